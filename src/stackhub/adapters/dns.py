"""Look up DNS records (dnspython): the CNAME chain and addresses of a name, and CAA records.

The resolver is the system's, or the one STACKHUB_DNS_RESOLVER names (``HOST`` or
``HOST:PORT``, e.g. a test DNS server on loopback).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Protocol

# dnspython (2.3 MB resident) loads when a resolver is first made (issue 18, part 4)
from stackhub.errors import Invalid

TIMEOUT = 5.0


@dataclass(frozen=True)
class Answer:
    """What DNS says about a name: the CNAME chain followed, and the addresses at its end."""

    cnames: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    error: str | None = None
    """Why the lookup failed (timeout, SERVFAIL), as opposed to the name having no records."""
    caa: tuple[str, ...] = field(default=())
    """CAA ``issue`` values found at the name or its closest parent that has any."""


class Resolver(Protocol):
    """What the domain checks need from DNS (fakes implement it in unit tests)."""

    def lookup(self, name: str) -> Answer: ...


def _server(text: str) -> tuple[str, int]:
    """Split ``HOST``, ``HOST:PORT``, ``[V6]`` or ``[V6]:PORT``."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, "53"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise Invalid(f"STACKHUB_DNS_RESOLVER={text!r} must be HOST or HOST:PORT")
    return host, int(port)


class DnsResolver:
    """A resolver through dnspython."""

    def __init__(self, server: str | None = None) -> None:
        """Use `server` (``HOST[:PORT]``), else $STACKHUB_DNS_RESOLVER, else the system's."""
        import dns.resolver

        text = server if server is not None else os.environ.get("STACKHUB_DNS_RESOLVER", "")
        if text.strip():
            host, port = _server(text.strip())
            self.resolver = dns.resolver.Resolver(configure=False)
            self.resolver.nameservers = [host]
            self.resolver.port = port
        else:
            self.resolver = dns.resolver.Resolver()
        self.resolver.lifetime = TIMEOUT
        self.resolver.timeout = TIMEOUT

    def _records(self, name: str, rtype: str) -> tuple[list[str], str | None]:
        import dns.exception
        import dns.resolver

        try:
            answer = self.resolver.resolve(name, rtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return [], None
        except dns.resolver.NoNameservers as err:
            return [], f"no DNS server answered for {name} ({err})"
        except dns.exception.Timeout:
            return [], f"the DNS lookup of {name} timed out"
        except dns.exception.DNSException as err:
            return [], f"the DNS lookup of {name} failed: {err}"
        return [r.to_text() for r in answer], None

    def _chain(self, name: str) -> tuple[list[str], str | None]:
        chain: list[str] = []
        current = name
        for _ in range(8):
            found, error = self._records(current, "CNAME")
            if error is not None:
                return chain, error
            if not found:
                break
            current = found[0].rstrip(".").lower()
            chain.append(current)
        return chain, None

    def _caa(self, name: str) -> list[str]:
        labels = name.split(".")
        for i in range(len(labels) - 1):
            found, _ = self._records(".".join(labels[i:]), "CAA")
            if found:
                return found
        return []

    def lookup(self, name: str) -> Answer:
        """Return the CNAME chain and the A/AAAA addresses of `name`."""
        chain, error = self._chain(name)
        end = chain[-1] if chain else name
        addresses: list[str] = []
        if error is None:
            for rtype in ("A", "AAAA"):
                found, error = self._records(end, rtype)
                addresses += found
                if error is not None:
                    break
        caa = self._caa(name) if error is None else []
        return Answer(cnames=tuple(chain), addresses=tuple(addresses), error=error,
                      caa=tuple(caa))
