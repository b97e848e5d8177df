"""Backup faults with real restic, a real server and the real engine.

A restore as a new instance killed after its data was placed leaves no half-made copy and the
next try works; a full repository disk fails the backup clearly (the app runs again, no
snapshot); a data disk that fills up during a restore's fetch fails it clearly and leaves the
live data as it was; a data disk too small for the volumes' staging copy fails the backup
clearly, and a backup killed after that copy starts the app again and the next one works.
Full disks are small tmpfs mounts (needs root, as the engine tests do).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Server, docker
from tests.integration.test_backup import cli_json, install, mangle, seed, tree, volume_tree

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def small_disk(where: Path, size: str) -> Iterator[Path]:
    """Mount a tmpfs of `size` at `where` for the block (skip the test if that is refused)."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                              str(where)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def volume_exists(name: str) -> bool:
    """Tell whether the engine has a volume of that name."""
    return subprocess.run(["docker", "volume", "inspect", name], capture_output=True,
                          check=False).returncode == 0


def test_killed_restore_as_leaves_no_half_made_copy_and_the_next_try_works(
        crash_server: Server, tmp_path: Path) -> None:
    from tests.integration.test_crash import wait_for
    from tests.integration.test_crash_kinds import _send

    name, copy = "h2-killed-as", "h2-killed-as-copy"
    marker = tmp_path / "paused"
    crash_server.start(STACKHUB_FAULT_PAUSE="restore-as-placed",
                       STACKHUB_FAULT_MARKER=str(marker))
    install(crash_server, name)
    seed(crash_server, name)
    created = crash_server.cli("backup", "create", name)
    assert created.returncode == 0, created.stderr + created.stdout
    data, volume = crash_server.data_dir / "appdata" / name, f"stackhub-{name}_db"
    before, before_volume = tree(data), volume_tree(volume)
    copy_data, copy_volume = crash_server.data_dir / "appdata" / copy, f"stackhub-{copy}_db"

    _send(crash_server, "POST", f"/api/backups/instances/{name}/snapshots/latest/restore",
          {"as_name": copy})
    wait_for(marker.exists, what="the restore as a new instance to place its data")
    assert copy_data.is_dir() and volume_exists(copy_volume)  # half made
    crash_server.kill9()
    crash_server.start()

    last = crash_server.api("GET", "/api/operations",
                            params={"instance": name}).json()["items"][0]
    assert (last["kind"], last["state"], last["target"]) == ("restore", "interrupted", copy)
    assert crash_server.api("GET", f"/api/instances/{copy}").status_code == 404
    assert not copy_data.exists()
    assert not (crash_server.data_dir / "instances" / copy).exists()
    assert not volume_exists(copy_volume)
    assert not docker("ps", "-aq", "--filter", f"label=com.docker.compose.project=stackhub-{copy}"
                      ).stdout.strip()
    assert crash_server.wait_status(name, {"running"})["status"] == "running"
    assert tree(data) == before and volume_tree(volume) == before_volume  # untouched

    crash_server.stop()
    crash_server.start()  # no fault point now
    again = crash_server.cli("backup", "restore", name, "latest", "--as", copy)
    assert again.returncode == 0, again.stderr + again.stdout
    assert crash_server.wait_status(copy, {"running"})["status"] == "running"
    assert tree(copy_data) == before and volume_tree(copy_volume) == before_volume


def test_a_full_repository_disk_fails_the_backup_clearly_and_the_app_runs(
        server: Server, tmp_path: Path) -> None:
    name = "h2-full-repo"
    install(server, name)
    seed(server, name)  # about 2.3 MB of random data
    with small_disk(tmp_path / "small", "1m") as disk:
        added = server.cli("backup", "repo", "add", "small", str(disk / "repo"))
        assert added.returncode == 0, added.stderr + added.stdout
        result = server.cli("backup", "create", name, "--repo", "small", "--json")
        assert result.returncode == 1, result.stdout + result.stderr
        op = json.loads(result.stdout)["operation"]
        assert op["state"] == "failed"
        assert "no space left" in op["error"] and "free some space" in op["error"], op["error"]
        assert server.wait_status(name, {"running"})["status"] == "running"
        assert cli_json(server, "backup", "list", name, "--repo", "small") == []
    # the default repository still takes the backup
    ok = server.cli("backup", "create", name)
    assert ok.returncode == 0, ok.stderr + ok.stdout


def test_a_data_disk_filling_up_during_the_restore_fails_it_and_keeps_the_live_data(
        server: Server) -> None:
    name = "h2-full-data"
    install(server, name)
    seed(server, name)
    data, volume = server.data_dir / "appdata" / name, f"stackhub-{name}_db"
    # the folders are fetched under backups/work (volumes may go straight into their volume)
    (data / "state" / "large.bin").write_bytes(b"\1" * 2_000_000)
    saved, saved_volume = tree(data), volume_tree(volume)
    created = server.cli("backup", "create", name)
    assert created.returncode == 0, created.stderr + created.stdout
    mangle(server, name)
    live, live_volume = tree(data), volume_tree(volume)

    # the free-space check passes (the data disk is large) but the fetch's folder fills up
    with small_disk(server.data_dir / "backups" / "work", "1m"):
        result = server.cli("backup", "restore", name, "latest", "--yes", "--json")
        assert result.returncode == 1, result.stdout + result.stderr
        op = json.loads(result.stdout)["operation"]
        assert op["state"] == "failed"
        assert "no space left" in op["error"], op["error"]
        assert server.wait_status(name, {"running"})["status"] == "running"
        assert tree(data) == live and volume_tree(volume) == live_volume  # nothing lost
        assert not any((server.data_dir / "backups" / "work").iterdir())
        # the helper for the volume, started beside the folders' fetch that failed, is gone
        assert not docker("ps", "-aq", "--filter", "label=io.stackhub.helper", "--filter",
                          f"volume={volume}").stdout.strip()
    again = server.cli("backup", "restore", name, "latest", "--yes")
    assert again.returncode == 0, again.stderr + again.stdout
    assert server.wait_status(name, {"running"})["status"] == "running"
    assert tree(data) == saved and volume_tree(volume) == saved_volume


def test_a_corrupted_pack_is_reported_with_the_snapshots_it_damages(server: Server) -> None:
    name = "h2-corrupt"
    install(server, name)
    seed(server, name)
    created = server.cli("backup", "create", name)
    assert created.returncode == 0, created.stderr + created.stdout
    snap = cli_json(server, "backup", "list", name)[0]
    healthy = cli_json(server, "backup", "repo", "check", "local", "--read-data-subset", "100%")
    assert healthy["ok"] is True and healthy["damaged_snapshots"] == []

    packs = sorted((server.data_dir / "backups" / "repository" / "data").glob("*/*"),
                   key=lambda p: p.stat().st_size)
    pack = packs[-1]  # the largest holds the volume's random data
    with pack.open("r+b") as handle:  # bit rot in the middle of the file
        handle.seek(pack.stat().st_size // 2)
        handle.write(b"\0rot\0" * 8)
    result = server.cli("backup", "repo", "check", "local", "--read-data-subset", "100%",
                        "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert pack.name in report["damaged_packs"], report
    assert [s["id"] for s in report["damaged_snapshots"]] == [snap["id"]], report
    assert report["damaged_snapshots"][0]["instance"] == name
    assert snap["short_id"] in report["output"] and "not restorable whole" in report["output"]
    text = server.cli("backup", "repo", "check", "local", "--read-data-subset", "100%")
    assert text.returncode == 1
    assert f"damaged: snapshot {snap['short_id']} of {name}" in text.stderr + text.stdout


def test_a_data_disk_too_small_for_the_staging_copy_fails_the_backup_clearly(
        server: Server) -> None:
    """The volumes' staging copy needs about their size free; a full disk says so."""
    name = "h3-full-stage"
    install(server, name)
    seed(server, name)  # 2 MB in the volume
    stage = server.data_dir / "backups" / "stage"
    with small_disk(stage, "1m"):
        result = server.cli("backup", "create", name, "--json")
        assert result.returncode == 1, result.stdout + result.stderr
        op = json.loads(result.stdout)["operation"]
        assert op["state"] == "failed"
        assert "no space left" in op["error"] and "staging copy" in op["error"], op["error"]
        assert server.wait_status(name, {"running"})["status"] == "running"
        assert cli_json(server, "backup", "list", name) == []
        assert not (stage / name).exists()  # the partial copy is gone
    ok = server.cli("backup", "create", name)
    assert ok.returncode == 0, ok.stderr + ok.stdout


def test_a_backup_killed_after_the_staging_copy_starts_the_app_and_the_next_one_works(
        crash_server: Server, tmp_path: Path) -> None:
    from tests.integration.test_crash import wait_for
    from tests.integration.test_crash_kinds import _send

    name = "h3-killed-stage"
    marker = tmp_path / "paused"
    crash_server.start(STACKHUB_FAULT_PAUSE="backup-staged", STACKHUB_FAULT_MARKER=str(marker))
    install(crash_server, name)
    seed(crash_server, name)
    volume = f"stackhub-{name}_db"
    before = volume_tree(volume)
    _send(crash_server, "POST", f"/api/backups/instances/{name}", None)
    wait_for(marker.exists, what="the backup to copy the volume")
    assert (crash_server.data_dir / "backups" / "stage" / name / "volumes" / "db").is_dir()
    crash_server.kill9()
    crash_server.start()
    assert crash_server.wait_status(name, {"running"})["status"] == "running"
    assert not (crash_server.data_dir / "backups" / "stage" / name).exists()
    assert not docker("ps", "-aq", "--filter", "label=io.stackhub.helper", "--filter",
                      f"volume={volume}").stdout.strip()  # the copy's helper is gone
    made = crash_server.cli("backup", "create", name)
    assert made.returncode == 0, made.stderr + made.stdout
    mangle(crash_server, name)
    restored = crash_server.cli("backup", "restore", name, "latest", "--yes")
    assert restored.returncode == 0, restored.stderr + restored.stdout
    assert crash_server.wait_status(name, {"running"})["status"] == "running"
    assert volume_tree(volume) == before
