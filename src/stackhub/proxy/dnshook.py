"""lego's exec hook: present and clean up the DNS-01 TXT record through lexicon.

Debian's lego 4.9.1 lacks the cloudflare, alidns, tencentcloud and dnspod providers; for
those StackHub runs lego with ``--dns=exec`` and EXEC_PATH naming a small script that calls
`main` here. lego calls it as ``present|cleanup FQDN VALUE`` and passes its own environment,
which holds the provider's credentials (never argv), STACKHUB_DNS_KIND and STACKHUB_DNS_ZONE.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from stackhub.adapters import dnsrecords, lego
from stackhub.errors import StackHubError

SCRIPT = "stackhub-dns-hook"
KIND_VAR = "STACKHUB_DNS_KIND"
ZONE_VAR = "STACKHUB_DNS_ZONE"


def script(folder: Path, python: str | None = None) -> Path:
    """Write (or refresh) the hook script lego's exec provider runs; return its path (0700)."""
    path = folder / SCRIPT
    text = (f"#!{python or sys.executable}\n"
            "import sys\n"
            "from stackhub.proxy.dnshook import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    path.chmod(0o700)
    return path


def settings(kind: str, zone: str, hook: Path) -> dict[str, str]:
    """Return the variables (none secret) that make lego call the hook for `kind`."""
    return {"EXEC_PATH": str(hook), KIND_VAR: kind, ZONE_VAR: zone}


async def act(action: str, fqdn: str, value: str, env: Mapping[str, str]) -> None:
    """Present or clean up the TXT record `fqdn` = `value` with the credentials in `env`."""
    kind, zone = env.get(KIND_VAR, ""), env.get(ZONE_VAR, "")
    kept = lego.KINDS.get(kind)
    credentials = {k: env[k] for k in (kept.variables() if kept else ()) if k in env}
    target = dnsrecords.Zone(kind, credentials, zone, ttl=120)
    if action == "present":
        await dnsrecords.add(target, fqdn, "TXT", value)
    else:
        await dnsrecords.delete(target, fqdn, "TXT", value)


def main(argv: list[str], env: Mapping[str, str] | None = None) -> int:
    """Run ``present|cleanup FQDN VALUE``; print a reason and return 1 on failure."""
    env = os.environ if env is None else env
    if len(argv) != 3 or argv[0] not in ("present", "cleanup"):
        print(f"usage: {SCRIPT} present|cleanup FQDN VALUE", file=sys.stderr)
        return 2
    if not env.get(KIND_VAR) or not env.get(ZONE_VAR):
        print(f"{SCRIPT}: {KIND_VAR} and {ZONE_VAR} must be set (StackHub sets them)")
        return 2
    try:
        asyncio.run(act(argv[0], argv[1], argv[2], env))
    except StackHubError as err:
        print(err.message)
        return 1
    return 0
