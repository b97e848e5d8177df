"""Give the Docker daemon small default address pools in daemon.json, merging, never replacing.

StackHub's own networks get explicit subnets (apps/subnets.py); this is for every other
network on the engine (``docker network create``, compose projects StackHub does not run).
Docker's stock pools hand out /16 and /20 blocks, about 30 networks in all; these hand out
/24 blocks of 172.16.0.0/12 (4096 networks), clear of StackHub's own 10.231.0.0/16.
Run by scripts/up as ``python -m stackhub.system.engine_pools [/etc/docker/daemon.json]``;
dockerd reads the file when it starts, so a running engine needs a restart to use it.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from stackhub import fsutil
from stackhub.errors import Invalid

DAEMON_JSON = Path("/etc/docker/daemon.json")
KEY = "default-address-pools"
POOLS: list[dict[str, Any]] = [{"base": "172.16.0.0/12", "size": 24}]


def merge_pools(settings: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Return the daemon settings with StackHub's pools added, and whether that changed them.

    A pools setting already there (the admin's own) is kept as it is.
    """
    if KEY in settings:
        return settings, False
    return {**settings, KEY: [dict(pool) for pool in POOLS]}, True


def read_settings(path: Path) -> dict[str, Any]:
    """Read daemon.json (a missing or empty file is no settings); raise Invalid if unreadable."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    if not text.strip():
        return {}
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as err:
        raise Invalid(f"{path} is not valid JSON ({err}); StackHub left it alone") from err
    if not isinstance(settings, dict):
        raise Invalid(f"{path} is not a JSON object; StackHub left it alone")
    return settings


def configure(path: Path = DAEMON_JSON) -> bool:
    """Add StackHub's pools to `path` unless it sets its own; return whether it was written.

    Every other setting is kept; the file as it was is copied once to ``*.stackhub-backup``.
    """
    settings, changed = merge_pools(read_settings(path))
    if not changed:
        return False
    backup = path.with_name(path.name + ".stackhub-backup")
    if path.exists() and not backup.exists():
        shutil.copy2(path, backup)
    fsutil.write_atomic(path, json.dumps(settings, indent=2) + "\n", mode=0o644)
    return True


def main(argv: list[str]) -> int:
    """Configure the file named by argv[1] (default /etc/docker/daemon.json); print the outcome."""
    path = Path(argv[1]) if len(argv) > 1 else DAEMON_JSON
    try:
        written = configure(path)
    except (Invalid, OSError) as err:
        print(f"engine pools: {getattr(err, 'message', err)}", file=sys.stderr)
        return 1
    if written:
        print(f"engine pools: added {KEY} {json.dumps(POOLS)} to {path}; dockerd uses them "
              "from its next start")
    else:
        print(f"engine pools: {path} sets {KEY} already; kept as it is")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
