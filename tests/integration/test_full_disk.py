"""A full data disk: installs fail with a clear message and change nothing (real tmpfs)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import FIXTURE_APPS, Server, instance_containers

pytestmark = pytest.mark.integration


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs as the data root's disk (CI runs as root, which mounting needs)."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a tmpfs and must run as root (scripts/test runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(mount)],
                   check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill the disk to the last byte; return the filler file."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:  # unbuffered: close has nothing left to write
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass
    return filler


def settled(server: Server) -> None:
    """Wait until the first store sync at start is over (a failed one would free space)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stores = server.api("GET", "/api/stores").json()
        if stores and all(s["last_attempt"] for s in stores):
            return
        time.sleep(0.2)
    raise AssertionError(f"the stores never synced: {stores}")


def test_install_on_a_full_disk_fails_clearly_and_changes_nothing(small_disk: Path) -> None:
    server = Server(small_disk / "data")
    server.start()
    try:
        settled(server)
        filler = fill(small_disk)
        assert fill(small_disk / "data").stat().st_size == 0  # nothing left, even for a page
        result = server.cli("app", "install", str(FIXTURE_APPS / "two-tier"), "--name", "t-full",
                            "--yes")
        assert result.returncode == 1
        assert "disk holding StackHub's" in result.stderr and "is full" in result.stderr, \
            result.stderr
        assert "Internal Server Error" not in result.stderr
        assert json.loads(server.cli("app", "list", "--json").stdout) == []
        assert instance_containers("t-full") == []
        assert not (server.data_dir / "instances" / "t-full").exists()
        assert not (server.data_dir / "appdata" / "t-full").exists()

        filler.unlink()  # space again: the same install now works
        done = server.cli("app", "install", str(FIXTURE_APPS / "two-tier"), "--name", "t-full",
                          "--yes")
        assert done.returncode == 0, done.stderr
        assert "t-full is running" in done.stdout
    finally:
        server.stop()
        server.cleanup_engine()
