"""The one DNS record adapter: dns-lexicon creates, replaces and deletes records at a provider.

StackHub keeps a provider's credentials under lego's variable names (adapters/lego.py); this
module maps them to lexicon's options per provider (`options`), so one set of credentials
serves both DNS-01 and record management. Lexicon is called through its Python API (no shell,
no argv): the credentials never appear on a command line. Its errors are turned into
`DnsProviderRefused` with every credential value masked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from stackhub.adapters.lego import mask
from stackhub.errors import DnsProviderRefused, Invalid

log = logging.getLogger("stackhub.gateway")
# lexicon's Client guesses zones with tldextract, which fetches the public suffix list and logs
# a traceback when offline; StackHub gives the zone, so that guess is never used
logging.getLogger("tldextract").setLevel(logging.CRITICAL)
TTL = 300
TYPES = ("A", "AAAA", "CNAME", "TXT")


def _rfc2136(env: Mapping[str, str]) -> dict[str, str]:
    server = env["RFC2136_NAMESERVER"].strip()
    host, port = server, ""
    if server.startswith("["):  # [IPv6]:port
        host, _, rest = server[1:].partition("]")
        port = rest.removeprefix(":")
    elif server.count(":") == 1:  # IPv4:port
        host, _, port = server.partition(":")
    if port and port != "53":
        raise Invalid("record management over RFC 2136 needs the name server on port 53 "
                      f"(lexicon's ddns provider); {server[:60]} names port {port[:10]}")
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError as err:
        raise Invalid(f"RFC2136_NAMESERVER must be an IP address (with :53 at most), not "
                      f"{server[:60]!r}") from err
    if "RFC2136_TSIG_KEY" not in env or "RFC2136_TSIG_SECRET" not in env:
        raise Invalid("record management over RFC 2136 needs a TSIG key: set "
                      "RFC2136_TSIG_KEY and RFC2136_TSIG_SECRET")
    algorithm = env.get("RFC2136_TSIG_ALGORITHM", "hmac-sha1.").strip().rstrip(".")
    key = env["RFC2136_TSIG_KEY"].strip().rstrip(".")
    return {"ddns_server": host,
            "auth_token": f"{algorithm}:{key}:{env['RFC2136_TSIG_SECRET']}"}


def _cloudflare(env: Mapping[str, str]) -> dict[str, str]:
    if "CF_DNS_API_TOKEN" in env:
        return {"auth_token": env["CF_DNS_API_TOKEN"]}
    return {"auth_username": env["CF_API_EMAIL"], "auth_token": env["CF_API_KEY"]}


def _route53(env: Mapping[str, str]) -> dict[str, str]:
    found = {"auth_access_key": env["AWS_ACCESS_KEY_ID"],
             "auth_access_secret": env["AWS_SECRET_ACCESS_KEY"]}
    if env.get("AWS_HOSTED_ZONE_ID"):
        found["zone_id"] = env["AWS_HOSTED_ZONE_ID"]
    return found


def _dnspod(env: Mapping[str, str]) -> dict[str, str]:
    ident, sep, token = env["DNSPOD_API_KEY"].partition(",")
    if not sep or not ident or not token:
        raise Invalid("DNSPOD_API_KEY must be ID,TOKEN (as DNSPod shows the API token)")
    return {"auth_username": ident, "auth_token": token}


@dataclass(frozen=True)
class LexiconKind:
    """How one StackHub provider kind reaches lexicon."""

    lexicon: str
    convert: Callable[[Mapping[str, str]], dict[str, str]]


PROVIDERS: dict[str, LexiconKind] = {
    "cloudflare": LexiconKind("cloudflare", _cloudflare),
    "alidns": LexiconKind("aliyun", lambda e: {"auth_key_id": e["ALICLOUD_ACCESS_KEY"],
                                            "auth_secret": e["ALICLOUD_SECRET_KEY"]}),
    "tencentcloud": LexiconKind("qcloud", lambda e: {"secret_id": e["TENCENTCLOUD_SECRET_ID"],
                                                  "secret_key": e["TENCENTCLOUD_SECRET_KEY"]}),
    "dnspod": LexiconKind("dnspod", _dnspod),
    "route53": LexiconKind("route53", _route53),
    "rfc2136": LexiconKind("ddns", _rfc2136),
    "pdns": LexiconKind("powerdns", lambda e: {"pdns_server": e["PDNS_API_URL"],
                                            "auth_token": e["PDNS_API_KEY"],
                                            **({"pdns_server_id": e["PDNS_SERVER_NAME"]}
                                               if e.get("PDNS_SERVER_NAME") else {})}),
}
"""StackHub kinds lexicon manages records for (httpreq and exec have no record API)."""


def manages(kind: str) -> bool:
    """Tell whether StackHub can manage records with this provider kind."""
    return kind in PROVIDERS


def options(kind: str, env: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """Return lexicon's provider name and options for `kind`'s credentials (lego's names).

    Raises Invalid when the kind has no record API or a credential is missing or malformed.
    """
    found = PROVIDERS.get(kind)
    if found is None:
        raise Invalid(f"StackHub cannot manage DNS records with the {kind} provider (no "
                      f"record API); use one of {', '.join(sorted(PROVIDERS))}")
    try:
        return found.lexicon, found.convert(env)
    except KeyError as err:
        raise Invalid(f"the {kind} provider needs {err.args[0]} to manage DNS records") \
            from err


@dataclass(frozen=True)
class Zone:
    """Where records are written: a provider, its credentials and the zone it manages."""

    kind: str
    env: Mapping[str, str]
    zone: str
    ttl: int = TTL

    def config(self) -> dict[str, Any]:
        """Return lexicon's configuration (a dict; the zone is given, never guessed)."""
        provider, opts = options(self.kind, self.env)
        # some providers (ddns) read the zone among their own options
        return {"provider_name": provider, "domain": self.zone, "ttl": self.ttl,
                provider: {**opts, "domain": self.zone}}


_ENDPOINTS = ("AWS_ENDPOINT_URL_ROUTE_53", "AWS_ENDPOINT_URL")
_told: set[str] = set()


def route53_endpoint() -> str | None:
    """Return the Route 53 endpoint boto3 takes from the server's environment, if not AWS.

    Only the environment StackHub runs in sets it (a provider credential set accepts only the
    kind's own variables): meant for a Route 53-compatible test server. It is logged once.
    """
    found = next((os.environ[k] for k in _ENDPOINTS if os.environ.get(k)), None)
    if found is not None and found not in _told:
        _told.add(found)
        log.warning("gateway: DNS records go to the Route 53 endpoint %s (from %s in the "
                    "server's environment), not AWS", found[:200],
                    next(k for k in _ENDPOINTS if os.environ.get(k)))
    return found


def _client(zone: Zone) -> Any:
    if zone.kind == "route53":
        route53_endpoint()
    # imported on use: lexicon (requests, tldextract, bs4) is slow to import
    from lexicon.client import Client
    from lexicon.config import ConfigResolver, DictConfigSource

    config = ConfigResolver().with_dict(zone.config())  # type: ignore[no-untyped-call]
    client = Client(config)
    # Client guesses the zone from the public suffix list; StackHub knows it: put it first
    client.config.add_config_source(DictConfigSource({"domain": zone.zone}), 0)
    return client


class UpdateRefused(Exception):
    """The name server answered an RFC 2136 update with an error code (lexicon ignores it)."""


def _checked(ops: Any) -> Any:
    """Make lexicon's ddns provider check each update's response code.

    lexicon sends the update and ignores the answer, so REFUSED (the key may not change that
    name), NOTAUTH (the server is not authoritative for the zone) or SERVFAIL read as
    success; every other provider talks HTTP and raises on its own.
    """
    import dns.opcode
    import dns.rcode

    provider = ops.provider
    send = provider._run_query

    def run(message: Any) -> Any:
        answer = send(message)
        code = answer.rcode()
        if message.opcode() == dns.opcode.UPDATE and code != dns.rcode.NOERROR:
            raise UpdateRefused(f"the name server answered the update of zone "
                                f"{provider.zone} with {dns.rcode.to_text(code)}"
                                f"{_HINTS.get(dns.rcode.to_text(code), '')}")
        return answer

    provider._run_query = run
    return ops


_HINTS = {"REFUSED": " (the TSIG key may not change this name: check the zone's "
                     "update-policy or allow-update)",
          "NOTAUTH": " (the server is not authoritative for this zone, or the TSIG key is "
                     "not accepted)",
          "NOTZONE": " (the name is not in this zone)"}


@contextmanager
def _open(zone: Zone) -> Iterator[Any]:
    """Open lexicon's client; its ddns operations check each update's answer."""
    with _client(zone) as ops:
        yield _checked(ops) if zone.kind == "rfc2136" else ops


def _fqdn(name: str) -> str:
    return name.rstrip(".")


def _check(zone: Zone, name: str, rtype: str) -> None:
    if rtype not in TYPES:
        raise Invalid(f"record type {rtype} is not managed (use {', '.join(TYPES)})")
    fqdn, root = _fqdn(name).lower(), zone.zone.rstrip(".").lower()
    if fqdn != root and not fqdn.endswith("." + root):
        raise Invalid(f"{fqdn} is not in the zone {root} that the DNS provider manages")


def content_for(kind: str, rtype: str, content: str) -> str:
    """Return a record's content as the provider wants it.

    RFC 2136 (lexicon's ddns) reads a CNAME target relative to the zone unless it ends in a
    dot; the HTTP APIs take the bare name.
    """
    if rtype == "CNAME" and kind == "rfc2136":
        return content.rstrip(".") + "."
    return content


def _replace(zone: Zone, name: str, rtype: str, contents: tuple[str, ...]) -> None:
    with _open(zone) as ops:
        # only delete what exists: route53 (and others) raise when nothing matches
        if zone.kind == "rfc2136" or ops.list_records(rtype, _fqdn(name)):
            ops.delete_record(None, rtype, _fqdn(name), None)
        for content in contents:
            ops.create_record(rtype, _fqdn(name), content_for(zone.kind, rtype, content))


def _add(zone: Zone, name: str, rtype: str, content: str) -> None:
    with _open(zone) as ops:
        ops.create_record(rtype, _fqdn(name), content)


def _delete(zone: Zone, name: str, rtype: str, content: str | None) -> None:
    with _open(zone) as ops:
        ops.delete_record(None, rtype, _fqdn(name), content)


async def _call(zone: Zone, what: str, fn: Callable[[], None], timeout: float) -> None:
    try:
        await asyncio.wait_for(asyncio.to_thread(fn), timeout)
    except Invalid:
        raise
    except TimeoutError as err:
        raise DnsProviderRefused(f"the DNS provider ({zone.kind}) did not answer within "
                                 f"{timeout:.0f} s while {what}") from err
    except Exception as err:  # lexicon and the providers' HTTP libraries raise anything
        text = mask(f"{type(err).__name__}: {err}{_detail(err)}", zone.env)[:400]
        raise DnsProviderRefused(f"the DNS provider ({zone.kind}) refused {what}: "
                                 f"{text}") from err


def _detail(err: Exception) -> str:
    """Return what an HTTP error's answer says beyond its text (a refused key, above all)."""
    answer = getattr(err, "response", None)
    status = None
    detail = ""
    if isinstance(answer, dict):  # botocore's ClientError (route53)
        status = answer.get("ResponseMetadata", {}).get("HTTPStatusCode")
        error = answer.get("Error") or {}
        if not error.get("Code"):  # some endpoints answer <Errors><Error>: botocore misses it
            error = (answer.get("Errors") or {}).get("Error") or {}
        if error.get("Code") and error["Code"] not in str(err):
            detail = f" ({error['Code']}: {str(error.get('Message', ''))[:160]})"
    else:
        status = getattr(answer, "status_code", None)  # requests' HTTPError
    if status in (401, 403):
        detail += (f"; HTTP {status}: the provider did not accept the credentials (check the "
                   "key, its secret and that it may change this zone)")
    return detail


async def replace(zone: Zone, name: str, rtype: str, contents: tuple[str, ...], *,
                  timeout: float = 60.0) -> None:
    """Make `contents` the only `rtype` records of `name` (delete the old ones, add these)."""
    _check(zone, name, rtype)
    options(zone.kind, zone.env)
    await _call(zone, f"setting {rtype} {name}", lambda: _replace(zone, name, rtype, contents),
                timeout)


async def add(zone: Zone, name: str, rtype: str, content: str, *,
              timeout: float = 60.0) -> None:
    """Add one record (the others of `name` stay: several TXT challenges may coexist)."""
    _check(zone, name, rtype)
    options(zone.kind, zone.env)
    await _call(zone, f"adding {rtype} {name}", lambda: _add(zone, name, rtype, content),
                timeout)


async def delete(zone: Zone, name: str, rtype: str, content: str | None = None, *,
                 timeout: float = 60.0) -> None:
    """Delete `name`'s `rtype` records (only the one with `content` when given)."""
    _check(zone, name, rtype)
    options(zone.kind, zone.env)
    await _call(zone, f"deleting {rtype} {name}",
                lambda: _delete(zone, name, rtype, content), timeout)
