"""restic's word that it is done with a folder, with the real restic: only once every file in
it was read, so what changes there afterwards is not in the snapshot."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from pathlib import Path

from stackhub.adapters.restic import Repository, ResticCli

PATHS = ["instances/x", "appdata/x", "backups/stage/x"]


def _tree(root: Path) -> None:
    """An app's folder that takes restic a while to read (its log sorted last), the staged
    copy of a volume and the project files."""
    data = root / "appdata" / "x"
    data.mkdir(parents=True)
    for index in range(120):
        (data / f"f{index:03d}.bin").write_bytes(os.urandom(1 << 20))
    (data / "z.log").write_text("before\n")
    (root / "backups" / "stage" / "x").mkdir(parents=True)
    (root / "backups" / "stage" / "x" / "volume.bin").write_bytes(os.urandom(8 << 20))
    (root / "instances" / "x").mkdir(parents=True)
    (root / "instances" / "x" / "compose.yaml").write_text("services: {}\n")


def _repo(tmp_path: Path) -> Repository:
    password = tmp_path / "password"
    password.write_text(secrets.token_urlsafe(32) + "\n")
    repo = Repository(name="local", url=str(tmp_path / "repo"), password_file=password)
    asyncio.run(ResticCli().init(repo))
    return repo


def _dump(repo: Repository, path: str) -> str:
    return subprocess.run(["restic", *repo.args(), "dump", "--no-lock", "latest", path],
                          capture_output=True, text=True, check=True, timeout=120).stdout


def test_a_folder_is_released_once_read_and_later_changes_miss_the_snapshot(
        tmp_path: Path) -> None:
    root = tmp_path / "root"
    _tree(root)
    repo = _repo(tmp_path)
    calls: list[int] = []

    def released() -> None:  # what the app does once started again: write to its folder
        calls.append(len(calls))
        with (root / "appdata" / "x" / "z.log").open("a") as log:
            log.write("after\n")

    for _ in range(2):  # a first backup and an incremental one (unchanged files skipped)
        calls.clear()
        summary = asyncio.run(ResticCli().backup(repo, PATHS, cwd=root, tags=["t"], host="h",
                                                 live=["appdata/x"], released=released))
        assert calls == [0], calls  # once, while restic still ran
        assert summary.snapshot_id
        # restic had read z.log before it said so: the snapshot holds it as it was before
        assert _dump(repo, "/appdata/x/z.log") == (root / "appdata" / "x" /
                                                  "z.log").read_text().rsplit("after\n", 1)[0]
        assert (root / "appdata" / "x" / "z.log").read_text().endswith("after\n")


def test_no_word_for_a_folder_restic_does_not_read(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _tree(root)
    repo = _repo(tmp_path)
    calls: list[str] = []
    asyncio.run(ResticCli().backup(repo, PATHS, cwd=root, tags=["t"], host="h",
                                   live=["appdata/x", "appdata/y"],
                                   released=lambda: calls.append("released")))
    assert calls == []  # appdata/y is not among the paths: never all read, never released
    # a live folder at a full path is named by restic at that path
    asyncio.run(ResticCli().backup(repo, [str(root / "appdata" / "x")], cwd=root, tags=["t"],
                                   host="h", live=[str(root / "appdata" / "x")],
                                   released=lambda: calls.append("released")))
    assert calls == ["released"]
