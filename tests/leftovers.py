"""Engine objects left by killed test runs: test servers get marked install ids, swept at start."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import tempfile
from pathlib import Path

PREFIX = "test"  # every test server's install id starts with it (a real one is 12 hex digits)
# where pytest keeps data roots: runs from before install ids were marked are known by it
TEST_ROOTS = str(Path(tempfile.gettempdir()) / "pytest-of-")


def mark_install(data_dir: Path) -> str:
    """Give a test data root a recognisable install id before its server first starts."""
    path = data_dir / "install-id"
    if path.is_file() and path.read_text().strip():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = f"{PREFIX}{secrets.token_hex(5)}"
    path.write_text(value + "\n")
    return value


def _docker(*args: str) -> list[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False,
                            timeout=120)
    return [line for line in result.stdout.splitlines() if line.strip()]


def _ours(kind: str, installs: set[str]) -> list[str]:
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
        if install.startswith(PREFIX) or install in installs or workdir.startswith(TEST_ROOTS):
            installs.add(install)
            found.append(item.get("Id") or item["Name"])
    return found


def sweep() -> dict[str, int]:
    """Remove what earlier (killed) test runs left; STACKHUB_TEST_NO_SWEEP=1 for parallel runs."""
    if os.environ.get("STACKHUB_TEST_NO_SWEEP") == "1":
        return {}
    removed = {}
    installs: set[str] = set()
    for kind, remove in (("container", ["rm", "-f", "-v"]), ("network", ["network", "rm"]),
                         ("volume", ["volume", "rm", "-f"])):
        ids = _ours(kind, installs)
        if ids:
            _docker(*remove, *ids)
        removed[kind] = len(ids)
    return removed
