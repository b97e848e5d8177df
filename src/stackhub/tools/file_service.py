"""Which folder a file manager call may touch, and who should own what it writes."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from stackhub.adapters.engine import InventoryEngine
from stackhub.config import Paths
from stackhub.errors import Invalid, NotFound
from stackhub.state.instances import Records
from stackhub.tools import files
from stackhub.tools.files import Root

_ENV_LINE = re.compile(r"^(PUID|PGID)=['\"]?(\d{1,9})['\"]?$")
_VOLUME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


def upload_cap() -> int:
    """The largest upload accepted, in bytes (STACKHUB_UPLOAD_MAX, default 8 GiB)."""
    value = os.environ.get("STACKHUB_UPLOAD_MAX", "")
    return int(value) if value.isdigit() else files.UPLOAD_MAX


def free_reserve() -> int:
    """Bytes an upload always leaves free (STACKHUB_UPLOAD_RESERVE, default 64 MiB)."""
    value = os.environ.get("STACKHUB_UPLOAD_RESERVE", "")
    return int(value) if value.isdigit() else files.FREE_RESERVE


def app_owner(paths: Paths, name: str) -> tuple[int, int]:
    """The instance's PUID:PGID from its literal .env (1000:1000 when absent)."""
    found = {"PUID": 1000, "PGID": 1000}
    env = paths.instance_dir(name) / ".env"
    try:
        text = env.read_text(encoding="utf-8")
    except OSError:
        text = ""
    for line in text.splitlines():
        match = _ENV_LINE.match(line.strip())
        if match:
            found[match.group(1)] = int(match.group(2))
    return found["PUID"], found["PGID"]


def instance_root(paths: Paths, records: Records, name: str) -> Root:
    """The data folder of an existing instance (NotFound otherwise)."""
    if records.find(name) is None:
        raise NotFound(f"no instance named {name!r}")
    folder = paths.instance_data(name)
    if not folder.exists() and not folder.is_symlink():
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o755)  # an app without binds has none yet: give it one
    return Root(path=paths.instance_data(name), owner=app_owner(paths, name),
                label=f"instance {name}")


def volume_root(engine: InventoryEngine, name: str) -> Root:
    """The data folder of a local named volume (admins only: checked by the route)."""
    if not _VOLUME.match(name):
        raise Invalid(f"{name[:80]!r} is not a volume name")
    for volume in engine.all_volumes():
        if volume.name == name:
            if volume.driver != "local" or not volume.mountpoint:
                raise Invalid(f"volume {name} uses the {volume.driver} driver: only local "
                              "volumes can be browsed")
            return Root(path=Path(volume.mountpoint), owner=None, label=f"volume {name}")
    raise NotFound(f"no volume named {name!r}")
