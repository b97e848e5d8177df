"""Atomic writes and deletes confined to a root."""

from __future__ import annotations

import contextlib
import errno
import stat
import threading
from pathlib import Path

import pytest

from stackhub import fsutil
from stackhub.errors import Invalid, StorageFull
from stackhub.state.db import Database


def test_write_atomic_creates_parents_with_mode(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "file.txt"
    fsutil.write_atomic(target, "hello")
    assert target.read_text() == "hello"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    fsutil.write_atomic(target, b"bytes", mode=0o644)
    assert target.read_bytes() == b"bytes"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]  # no temp files left


def test_write_atomic_failure_leaves_the_old_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "file.txt"
    target.write_text("old")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("stackhub.fsutil.os.fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        fsutil.write_atomic(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_remove_tree_inside_deletes_a_direct_child(tmp_path: Path) -> None:
    root = tmp_path / "appdata"
    (root / "blog" / "deep").mkdir(parents=True)
    (root / "blog" / "deep" / "f").write_text("x")
    (root / "blog-old").mkdir()
    assert fsutil.remove_tree_inside(root / "blog", root) is True
    assert not (root / "blog").exists() and (root / "blog-old").is_dir()
    assert fsutil.remove_tree_inside(root / "blog", root) is False


@pytest.mark.parametrize("relative", ["blog/deep", "..", ".", "../appdata", "../x"])
def test_remove_tree_inside_refuses_anything_but_a_direct_child(tmp_path: Path,
                                                                relative: str) -> None:
    root = tmp_path / "appdata"
    (root / "blog" / "deep").mkdir(parents=True)
    with pytest.raises(Invalid, match="refusing to delete"):
        fsutil.remove_tree_inside(root / relative, root)
    assert (root / "blog" / "deep").is_dir()


def test_remove_tree_inside_refuses_other_roots(tmp_path: Path) -> None:
    (tmp_path / "a" / "blog").mkdir(parents=True)
    with pytest.raises(Invalid):
        fsutil.remove_tree_inside(tmp_path / "a" / "blog", tmp_path / "b")
    with pytest.raises(Invalid):
        fsutil.remove_tree_inside(tmp_path / "a", tmp_path / "a")
    assert (tmp_path / "a" / "blog").is_dir()


def test_remove_tree_inside_unlinks_a_symlink_without_following_it(tmp_path: Path) -> None:
    root = tmp_path / "appdata"
    root.mkdir()
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "f").write_text("keep")
    (root / "blog").symlink_to(outside)
    assert fsutil.remove_tree_inside(root / "blog", root) is True
    assert not (root / "blog").exists() and (outside / "f").read_text() == "keep"


def test_write_error_says_when_the_disk_is_full() -> None:
    full = fsutil.write_error(OSError(errno.ENOSPC, "No space left on device"), "the project")
    assert isinstance(full, StorageFull) and "is full" in full.message
    denied = fsutil.write_error(OSError(errno.EACCES, "Permission denied"), "the project")
    assert isinstance(denied, Invalid)
    assert denied.message == "cannot write the project: Permission denied"


def test_a_full_database_disk_is_storage_full(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db")
    db.query("PRAGMA max_page_count = 1")  # a database that cannot grow acts like a full disk
    with pytest.raises(StorageFull, match="is full"), db.transaction() as conn:
        conn.execute("CREATE TABLE big (x TEXT)")
        conn.execute("INSERT INTO big VALUES (?)", ("x" * 100_000,))
    assert db.query("SELECT count(*) FROM sqlite_master WHERE name = 'big'")[0][0] == 0


def test_create_inside_writes_once_and_never_through_links(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    assert fsutil.create_inside(root, "a/b/c.txt", b"one", mode=0o640)
    assert (root / "a" / "b" / "c.txt").read_bytes() == b"one"
    assert oct((root / "a" / "b" / "c.txt").stat().st_mode & 0o777) == "0o640"
    assert not fsutil.create_inside(root, "a/b/c.txt", b"two", mode=0o640)  # never replaced
    assert (root / "a" / "b" / "c.txt").read_bytes() == b"one"
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    assert not fsutil.create_inside(root, "link/x.txt", b"x", mode=0o644)
    (root / "file.txt").symlink_to(outside / "file.txt")
    assert not fsutil.create_inside(root, "file.txt", b"x", mode=0o644)
    (root / "plain").write_text("a file where a folder should be")
    assert not fsutil.create_inside(root, "plain/x.txt", b"x", mode=0o644)
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in root.iterdir()) == ["a", "file.txt", "link", "plain"]


def test_create_inside_survives_a_link_swapped_in_while_it_runs(tmp_path: Path) -> None:
    # a running container may replace a folder by a link at any moment: nothing may leak out
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                (root / "data").rename(root / "data-old")
                (root / "data").symlink_to(outside)
            with contextlib.suppress(OSError):
                (root / "data").unlink()
                (root / "data-old").rename(root / "data")

    thread = threading.Thread(target=swap)
    thread.start()
    try:
        for index in range(300):
            fsutil.create_inside(root, f"data/sub/f{index}.txt", b"x", mode=0o644)
    finally:
        stop.set()
        thread.join()
    assert list(outside.iterdir()) == []
