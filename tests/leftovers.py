"""Engine objects left by killed test runs: test servers get marked install ids, swept at start."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

PREFIX = "test"  # every test server's install id starts with it (a real one is 12 hex digits)
# where pytest keeps data roots: runs from before install ids were marked are known by it
TEST_ROOTS = str(Path(tempfile.gettempdir()) / "pytest-of-")
# younger objects may belong to a run going on beside this one (whose server is between starts)
MIN_AGE = 600  # s


def mark_install(data_dir: Path) -> str:
    """Give a test data root a recognisable install id before its server first starts."""
    path = data_dir / "install-id"
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = f"{PREFIX}{secrets.token_hex(5)}"
    # durable, as the server writes it: the power-loss test copies the disk without a sync
    temp = path.with_name(".install-id.tmp")
    with temp.open("w") as handle:
        handle.write(value + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    temp.rename(path)
    folder = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return value


def _docker(*args: str) -> list[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False,
                            timeout=120)
    return [line for line in result.stdout.splitlines() if line.strip()]


def live_installs() -> set[str]:
    """Install ids of the `stackhub serve` processes running now (another run's servers)."""
    live = set()
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if b"serve" not in cmdline or not any(b"stackhub" in part for part in cmdline):
                continue
            environ = dict(item.split(b"=", 1) for item in
                           (proc / "environ").read_bytes().split(b"\0") if b"=" in item)
            data = environ.get(b"STACKHUB_DATA_DIR")
            if data:
                live.add((Path(data.decode()) / "install-id").read_text().strip())
        except OSError:
            continue
    return live


def _age(item: dict[str, object]) -> float:
    """Seconds since the engine created a container, network or volume (0 when unknown)."""
    stamp = str(item.get("Created") or item.get("CreatedAt") or "")
    found = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)", stamp)
    if not found:
        return 0.0
    zone = "+00:00" if found.group(2) == "Z" else found.group(2)
    return time.time() - datetime.fromisoformat(found.group(1) + zone).timestamp()


def _ours(kind: str, installs: set[str], live: set[str]) -> list[str]:
    """Ids of one kind of object (container, network, volume) that a test install made.

    A container is a test's when its install id is marked or its compose project lives under
    pytest's temporary root; its install id then marks that install's networks and volumes.
    """
    listing = {"container": ["ps", "-a"], "network": ["network", "ls"], "volume": ["volume", "ls"]}
    ids = _docker(*listing[kind], "-q", "--filter", "label=io.stackhub.install")
    if not ids:
        return []
    found = []
    for raw in _docker(kind, "inspect", "--format", "{{json .}}", *ids):
        item = json.loads(raw)
        labels = (item.get("Config") or item).get("Labels") or {}
        install = str(labels.get("io.stackhub.install", ""))
        workdir = str(labels.get("com.docker.compose.project.working_dir", ""))
        if install in live or _age(item) < MIN_AGE:
            continue
        if install.startswith(PREFIX) or install in installs or workdir.startswith(TEST_ROOTS):
            installs.add(install)
            found.append(item.get("Id") or item["Name"])
    return found


def sweep() -> dict[str, int]:
    """Remove what earlier (killed) test runs left: not installs whose server runs, nor new ones."""
    removed = {}
    installs: set[str] = set()
    live = live_installs()
    for kind, remove in (("container", ["rm", "-f", "-v"]), ("network", ["network", "rm"]),
                         ("volume", ["volume", "rm", "-f"])):
        ids = _ours(kind, installs, live)
        if ids:
            _docker(*remove, *ids)
        removed[kind] = len(ids)
    return removed
