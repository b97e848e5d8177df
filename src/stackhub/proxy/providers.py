"""DNS provider credentials: validated, kept 0600 under the data root's secrets/, never shown.

One provider per box (the one managing the base domain's zone). Values reach lego only
through its environment (adapters/lego.py) and lexicon only through its Python API
(adapters/dnsrecords.py); the API and the CLI see which keys are set.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from stackhub.adapters import dnsrecords, lego
from stackhub.errors import Invalid, NotFound
from stackhub.fsutil import write_atomic, write_error
from stackhub.proxy import names
from stackhub.proxy.models import ProviderKindRead, ProviderRead
from stackhub.state.db import now

FILE = "dns-provider.json"
KEY = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}")
MAX_VALUE = 4096


@dataclass(frozen=True)
class Provider:
    """The configured provider, with its credentials (server side only)."""

    kind: lego.ProviderKind
    env: dict[str, str]
    email: str | None
    updated_at: str
    zone: str | None = None
    """The DNS zone the provider manages (records and challenges are written there)."""

    def zone_for(self, name: str) -> str:
        """Return the zone to write `name`'s records in (the set zone, else its last 2 labels)."""
        return self.zone or ".".join(name.split(".")[-2:])


def through_exec(kind: lego.ProviderKind, program: str | None = None) -> bool:
    """Tell whether DNS-01 for `kind` runs through lego's exec provider and lexicon.

    True when the installed lego lacks the provider (Debian's 4.9.1: cloudflare, alidns,
    tencentcloud, dnspod) but has ``exec``, and lexicon manages the kind's records.
    """
    return (not lego.supported(kind, program) and dnsrecords.manages(kind.kind)
            and lego.supported(lego.KINDS["exec"], program))


def usable(kind: lego.ProviderKind) -> bool:
    """Tell whether DNS-01 works with `kind` here (in lego, or through exec and lexicon)."""
    return lego.supported(kind) or through_exec(kind)


def kind_of(name: str) -> lego.ProviderKind:
    """Return a provider kind by name (or alias); raise Invalid listing the known ones."""
    key = name.strip().lower()
    found = lego.KINDS.get(lego.ALIASES.get(key, key))
    if found is None:
        raise Invalid(f"unknown DNS provider {name[:40]!r}: use one of "
                      f"{', '.join(sorted(lego.KINDS))}")
    return found


def check_credentials(kind: lego.ProviderKind, env: dict[str, str]) -> dict[str, str]:
    """Return `env` if it suits `kind`; raise Invalid naming the first problem."""
    allowed = kind.variables()
    clean: dict[str, str] = {}
    for key, value in env.items():
        if not KEY.fullmatch(key):
            raise Invalid(f"{key[:70]!r} is not a variable name (A-Z, 0-9 and _)")
        if key not in allowed:
            raise Invalid(f"{key} is not a setting of the {kind.kind} provider: use "
                          f"{', '.join(allowed)}")
        if not value:
            raise Invalid(f"{key} is empty")
        if len(value) > MAX_VALUE:
            raise Invalid(f"{key} is longer than {MAX_VALUE} characters")
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise Invalid(f"{key} contains a newline or another control character")
        clean[key] = value
    if not any(all(k in clean for k in group) for group in kind.required):
        need = " or ".join("+".join(group) for group in kind.required)
        raise Invalid(f"the {kind.kind} provider needs {need}")
    if kind.kind == "exec":
        path = Path(clean["EXEC_PATH"])
        if not path.is_absolute() or not path.is_file():
            raise Invalid("EXEC_PATH must be the absolute path of an existing program")
    if kind.kind == "rfc2136":
        tsig = [k for k in ("RFC2136_TSIG_KEY", "RFC2136_TSIG_SECRET") if k in clean]
        if len(tsig) == 1:
            raise Invalid("RFC2136_TSIG_KEY and RFC2136_TSIG_SECRET go together")
    return clean


class ProviderStore:
    """The provider file under secrets/ (0600, written atomically)."""

    def __init__(self, secrets: Path) -> None:
        """Keep the provider in `secrets`/dns-provider.json."""
        self.path = secrets / FILE

    def get(self) -> Provider | None:
        """Return the configured provider, or None."""
        try:
            data = json.loads(self.path.read_text())
            return Provider(kind=kind_of(str(data["kind"])),
                            env={str(k): str(v) for k, v in dict(data["env"]).items()},
                            email=data.get("email") or None,
                            updated_at=str(data.get("updated_at", "")),
                            zone=data.get("zone") or None)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, Invalid) as err:
            raise Invalid(f"the DNS provider file {self.path} is unreadable ({err}): set the "
                          "provider again") from err

    def set(self, kind: str, env: dict[str, str], email: str | None,
            zone: str | None = None) -> Provider:
        """Validate and store the provider (replacing any other); nothing is written if bad."""
        found = kind_of(kind)
        clean = check_credentials(found, env)
        if email is not None and email != "" and not EMAIL.fullmatch(email):
            raise Invalid("the email address for the CA is not valid")
        zone = names.normalise(zone, what="DNS zone") if zone else None
        if not usable(found):
            raise Invalid(f"the installed lego ({lego.binary() or 'missing'}) was built "
                          f"without the {found.lego} provider (Debian's lego 4.9.1 lacks "
                          "cloudflare, alidns, tencentcloud and dnspod, which StackHub then "
                          "runs through lego's exec provider): install lego from "
                          "https://github.com/go-acme/lego/releases and set STACKHUB_LEGO_BIN,"
                          " or use rfc2136, route53, pdns, httpreq or exec")
        provider = Provider(kind=found, env=clean, email=email or None, updated_at=now(),
                            zone=zone)
        data = {"kind": found.kind, "env": clean, "email": provider.email,
                "updated_at": provider.updated_at, "zone": zone}
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(self.path, json.dumps(data), mode=0o600)
        except OSError as err:
            raise write_error(err, "the DNS provider's credentials") from err
        return provider

    def remove(self) -> None:
        """Forget the provider; raise NotFound if none is set."""
        try:
            self.path.unlink()
        except FileNotFoundError as err:
            raise NotFound("no DNS provider is set") from err


def read(provider: Provider | None) -> ProviderRead:
    """Return what may be shown of a provider: its kind and which keys are set."""
    if provider is None:
        return ProviderRead(kind=None, lego=None, keys=[], email=None, updated_at=None)
    return ProviderRead(kind=provider.kind.kind, lego=provider.kind.lego,
                        keys=sorted(provider.env), email=provider.email,
                        updated_at=provider.updated_at, zone=provider.zone,
                        records=dnsrecords.manages(provider.kind.kind),
                        via_exec=through_exec(provider.kind))


def kinds() -> list[ProviderKindRead]:
    """Return every provider kind, its keys and whether DNS-01 and records work with it."""
    return [ProviderKindRead(kind=k.kind, lego=k.lego, title=k.title,
                             required=[list(g) for g in k.required], keys=list(k.variables()),
                             available=usable(k), via_exec=through_exec(k),
                             records=dnsrecords.manages(k.kind))
            for k in lego.KINDS.values()]
