"""A restore's swap inside a volume: fetched entries in, live ones aside, back on a roll-back."""

from __future__ import annotations

import json
import os
from pathlib import Path

from stackhub.adapters.compose import COMPOSE_FILE, ENV_FILE
from stackhub.backup.flows import (
    _clear_inside,
    _swap_inside,
    _undo_inside,
    inside_names,
    project_files,
    same_project,
)

CONTENT = "backups/stage/web/volumes/db"


def _volume(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """Make a live volume root with a file, a folder and a link, plus a fetched snapshot."""
    root = tmp_path / "v" / "db"
    (root / "sub").mkdir(parents=True)
    (root / "old.txt").write_text("old")
    (root / "sub" / "deep.txt").write_text("deep")
    (root / "link").symlink_to("/etc")  # never followed
    root.chmod(0o750)
    os.utime(root, ns=(1_000_000_000, 2_000_000_000))
    names = inside_names("op-1/../x")
    fetched = root / names["new"] / CONTENT
    fetched.mkdir(parents=True)
    (fetched / "new.txt").write_text("new")
    (fetched / "old.txt").write_text("restored")
    fetched.chmod(0o711)
    journal = tmp_path / "db.json"
    info = root.lstat()
    journal.write_text(json.dumps({
        "volume": {"name": "stackhub-web_db", "key": "db"}, **names, "phase": "fetching",
        "root": [info.st_uid, info.st_gid, 0o750, 1_000_000_000, 2_000_000_000]}))
    return root, journal, names


def _listing(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): ("link" if p.is_symlink() else p.read_text()
                                       if p.is_file() else "dir")
            for p in sorted(root.rglob("*"))}


def test_names_stay_inside_the_volume() -> None:
    names = inside_names("../../etc")
    assert all("/" not in n and n.startswith(".stackhub-restore-") for n in names.values())


def test_swap_puts_the_fetched_entries_in_and_keeps_the_live_ones_aside(tmp_path: Path) -> None:
    root, journal, names = _volume(tmp_path)
    live = {k: v for k, v in _listing(root).items() if not k.startswith(".stackhub")}
    _swap_inside(root, journal, CONTENT)
    assert json.loads(journal.read_text())["phase"] == "placed"
    assert not (root / names["new"]).exists()
    top = {k: v for k, v in _listing(root).items() if not k.startswith(".stackhub")}
    assert top == {"new.txt": "new", "old.txt": "restored"}
    assert root.stat().st_mode & 0o777 == 0o711
    aside = root / names["aside"]
    assert _listing(aside) == live
    _clear_inside(root, journal)
    assert sorted(p.name for p in root.iterdir()) == ["new.txt", "old.txt"]
    assert not journal.exists()


def test_a_roll_back_after_the_swap_brings_the_live_entries_back(tmp_path: Path) -> None:
    root, journal, _names = _volume(tmp_path)
    before = {k: v for k, v in _listing(root).items() if not k.startswith(".stackhub")}
    _swap_inside(root, journal, CONTENT)
    _undo_inside(root, journal)
    assert _listing(root) == before
    assert root.stat().st_mode & 0o777 == 0o750
    assert root.stat().st_mtime_ns == 2_000_000_000
    assert not journal.exists()


def test_a_roll_back_midway_through_putting_aside_loses_nothing(tmp_path: Path) -> None:
    root, journal, names = _volume(tmp_path)
    before = {k: v for k, v in _listing(root).items() if not k.startswith(".stackhub")}
    data = json.loads(journal.read_text())
    aside = root / names["aside"]
    aside.mkdir()
    data["phase"] = "swapping"
    journal.write_text(json.dumps(data))
    (root / "old.txt").rename(aside / "old.txt")  # a crash after the first entry moved
    _undo_inside(root, journal)
    assert _listing(root) == before


def test_a_roll_back_during_the_fetch_only_drops_the_fetched_folder(tmp_path: Path) -> None:
    root, journal, names = _volume(tmp_path)
    before = {k: v for k, v in _listing(root).items() if not k.startswith(".stackhub")}
    _undo_inside(root, journal)
    assert _listing(root) == before
    assert not (root / names["new"]).exists()


def test_restored_project_files_equal_to_the_live_ones_let_the_halted_containers_start(
        tmp_path: Path) -> None:
    restored, live = tmp_path / "restored", tmp_path / "live"
    for folder in (restored, live):
        folder.mkdir()
        (folder / COMPOSE_FILE).write_bytes(b"services: {web: {image: x}}\n")
        (folder / ENV_FILE).write_bytes(b"PORT=1\n")
    assert same_project(live, project_files(restored))
    (restored / ENV_FILE).write_bytes(b"PORT=2\n")  # another port: Compose must recreate
    assert not same_project(live, project_files(restored))
    (restored / ENV_FILE).unlink()  # an env file on one side only
    assert not same_project(live, project_files(restored))
    (live / ENV_FILE).unlink()
    assert same_project(live, project_files(restored))
    (restored / COMPOSE_FILE).write_bytes(b"services: {web: {image: y}}\n")
    assert not same_project(live, project_files(restored))
    (restored / COMPOSE_FILE).unlink()
    (restored / COMPOSE_FILE).symlink_to(live / COMPOSE_FILE)  # a link is never the same
    assert not same_project(live, project_files(restored))
    (restored / COMPOSE_FILE).unlink()
    (live / COMPOSE_FILE).unlink()
    assert not same_project(live, project_files(restored))  # no project at all: Compose decides
