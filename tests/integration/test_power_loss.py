"""A power cut mid-install: the data root on its own disk is copied as the disk holds it.

The data root lives on an ext4 file system in a loop-mounted image. During an install the
server is SIGKILLed and, without any sync, the image file is copied: the copy holds what the
"disk" held at that moment (writes StackHub did not fsync, still in the file system's page
cache, are not in it), as after a power cut. The copy is mounted (ext4 replays its journal)
and a server started on it must start, find its database intact (`PRAGMA integrity_check`)
and every instance consistent: its project files present, its status settled, and a retry of
the interrupted install converging.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import FIXTURE_APPS, Server, docker, instance_containers

pytestmark = pytest.mark.integration
SMALL = "services:\n  web:\n    image: stackhub-test/web:1\n    stop_grace_period: 1s\n"


def run(*args: str) -> None:
    """Run a system command (mount, mkfs...), failing the test with its output."""
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, f"{args}: {result.stderr}"


@contextlib.contextmanager
def loop_mounted(image: Path, where: Path) -> Iterator[Path]:
    """Mount an ext4 image on a loop device at `where` for the block."""
    where.mkdir(parents=True, exist_ok=True)
    run("mount", "-o", "loop", str(image), str(where))
    try:
        yield where
    finally:
        done = False
        for _ in range(20):  # containers with binds inside may take a moment to let go
            done = subprocess.run(["umount", str(where)], capture_output=True,
                                  check=False).returncode == 0
            if done:
                break
            time.sleep(0.5)
        if not done:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    """A fresh 512 MiB ext4 image (skips where loop devices cannot be mounted)."""
    if shutil.which("mkfs.ext4") is None or shutil.which("losetup") is None:
        pytest.skip("mkfs.ext4 or losetup missing")
    image = tmp_path / "disk.img"
    run("truncate", "-s", "512M", str(image))
    run("mkfs.ext4", "-q", "-F", str(image))
    return image


def test_power_cut_mid_install_leaves_a_consistent_data_root(disk: Path,
                                                              tmp_path: Path) -> None:
    snapshot = tmp_path / "after-the-cut.img"
    with loop_mounted(disk, tmp_path / "disk") as root:
        srv = Server(root / "data")
        srv.start()
        try:
            answer = srv.api("POST", "/api/instances", json={
                "source": {"kind": "compose", "compose": SMALL}, "name": "t-pl-done"})
            assert answer.status_code == 202, answer.text
            assert srv.wait_operation(answer.json()["operation"]["id"])["state"] == "succeeded"
            folder = FIXTURE_APPS / "slow-health"
            answer = srv.api("POST", "/api/instances", json={
                "source": {"kind": "app", "manifest": (folder / "stackhub-app.yaml").read_text(),
                           "compose": (folder / "compose.yaml").read_text()},
                "name": "t-pl-cut", "values": {"DB_DELAY": "6"}})
            assert answer.status_code == 202, answer.text
            deadline = time.monotonic() + 30
            while not instance_containers("t-pl-cut"):
                assert time.monotonic() < deadline, "the install never reached the engine"
                time.sleep(0.05)
            srv.kill9()
            # the power cut: what the disk holds now, without any sync
            run("cp", "--sparse=always", str(disk), str(snapshot))
        finally:
            srv.stop()
    with loop_mounted(snapshot, tmp_path / "after") as root:
        srv = Server(root / "data")
        try:
            srv.start()
            listed = {i["name"]: i for i in srv.api("GET", "/api/instances").json()}
            print(f"\nafter the cut: {({n: i['status'] for n, i in listed.items()})}")
            for name, item in listed.items():
                project = root / "data" / "instances" / name
                assert (project / "compose.yaml").is_file(), f"{name} lost its compose file"
                assert (project / ".env").is_file(), f"{name} lost its env file"
                assert item["status"] not in ("installing", "removing", "unknown"), item
            running = srv.api("GET", "/api/operations", params={"state": "running"}).json()
            assert running["total"] == 0  # recovery closed what the cut left running
            # what StackHub had committed before the cut is there: the finished install and
            # the record of the one that was running
            assert listed["t-pl-done"]["status"] == "running"
            assert listed["t-pl-cut"]["status"] == "interrupted"
            result = srv.cli("app", "retry", "t-pl-cut")
            assert result.returncode == 0, result.stderr + result.stdout
            assert srv.wait_status("t-pl-cut", {"running"})["status"] == "running"
            srv.stop()
            with sqlite3.connect(srv.data_dir / "stackhub.db") as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            srv.stop()
            for name in ("t-pl-done", "t-pl-cut"):
                docker("compose", "-p", f"stackhub-{name}", "down", "-v", "--timeout", "1",
                       check=False)
