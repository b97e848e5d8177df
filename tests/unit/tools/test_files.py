"""The file manager's operations on a plain folder: editing, trash, moves, zips, ranges."""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path

import pytest

from stackhub.cli.client import ClientError
from stackhub.cli.files import split_target
from stackhub.errors import Conflict, Invalid, NotFound, TooLarge
from stackhub.tools import files
from stackhub.tools.files import Root
from stackhub.tools.files_views import _byte_range, _Unsatisfiable


@pytest.fixture
def root(tmp_path: Path) -> Root:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "conf").mkdir()
    (folder / "conf" / "app.ini").write_text("a=1\n")
    return Root(path=folder, owner=(os.getuid(), os.getgid()))


def test_split_path_is_strict() -> None:
    assert files.split_path("") == [] and files.split_path("/") == []
    assert files.split_path("a/b/") == ["a", "b"]
    for bad in ("..", "a/../b", "/a", "a//b", "a\\b", "a\x01", "./a", "a/.", "x" * 256):
        with pytest.raises(Invalid):
            files.split_path(bad)


def test_edit_with_the_etag_and_refuse_a_stale_one(root: Root) -> None:
    opened = files.read_text(root, "conf/app.ini")
    assert opened.content == "a=1\n"
    saved = files.write_text(root, "conf/app.ini", "a=2\n", opened.etag)
    assert (root.path / "conf" / "app.ini").read_text() == "a=2\n"
    with pytest.raises(Conflict, match="changed since"):
        files.write_text(root, "conf/app.ini", "a=3\n", opened.etag)  # stale
    assert files.read_text(root, "conf/app.ini").etag == saved.etag
    with pytest.raises(Conflict, match="already exists"):
        files.write_text(root, "conf/app.ini", "x", None)
    files.write_text(root, "conf/new.ini", "b=1\n", None)
    assert (root.path / "conf" / "new.ini").read_text() == "b=1\n"
    (root.path / "big.txt").write_bytes(b"x" * (files.TEXT_MAX + 1))
    with pytest.raises(TooLarge):
        files.read_text(root, "big.txt")
    with pytest.raises(TooLarge):
        files.write_text(root, "conf/new.ini", "x" * (files.TEXT_MAX + 1), None)
    (root.path / "bin").write_bytes(b"\x00\x01")
    with pytest.raises(Invalid, match="not a text file"):
        files.read_text(root, "bin")


def test_delete_goes_to_the_trash_restores_and_expires(root: Root) -> None:
    item = files.delete(root, "conf")
    assert not (root.path / "conf").exists()
    assert [e.name for e in files.listing(root, "").entries] == []  # the trash is hidden
    listed = files.trash_list(root)
    assert [(e.id, e.path, e.kind) for e in listed] == [(item.id, "conf", "folder")]
    files.restore(root, item.id)
    assert (root.path / "conf" / "app.ini").read_text() == "a=1\n"
    assert files.trash_list(root) == []
    old = files.delete(root, "conf/app.ini")
    assert files.trash_list(root, now=time.time() + 6 * 86400)  # kept for 7 days
    assert files.trash_list(root, now=time.time() + 8 * 86400) == []  # then emptied
    with pytest.raises(NotFound):
        files.restore(root, old.id)
    with pytest.raises(Invalid):
        files.restore(root, "../../etc")
    files.delete(root, "conf")
    assert files.empty_trash(root) == 1 and files.trash_list(root) == []


def test_move_rename_folder_and_chown(root: Root) -> None:
    files.make_folder(root, "new")
    files.move(root, "conf/app.ini", "new/renamed.ini")
    assert (root.path / "new" / "renamed.ini").is_file()
    with pytest.raises(Invalid, match="into itself"):
        files.move(root, "new", "new/inner")
    files.make_folder(root, "other")
    with pytest.raises(Conflict):
        files.move(root, "other", "new")
    with pytest.raises(Conflict):
        files.make_folder(root, "new")
    with pytest.raises(NotFound):
        files.make_folder(root, "missing/child")
    assert files.chown(root, "", recursive=True) == 5  # other, new, conf, new/renamed.ini + root


def test_zip_streams_regular_files_and_folders(root: Root) -> None:
    (root.path / "conf" / "sub").mkdir()
    (root.path / "conf" / "sub" / "deep.txt").write_bytes(os.urandom(3 * files.CHUNK + 5))
    os.symlink("/", root.path / "conf" / "rootlink")
    os.mkfifo(root.path / "conf" / "pipe")
    data = b"".join(files.zip_folder(root, "conf"))
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert sorted(archive.namelist()) == ["app.ini", "sub/", "sub/deep.txt"]
    assert archive.read("sub/deep.txt") == (root.path / "conf" / "sub" / "deep.txt").read_bytes()
    assert archive.testzip() is None


def test_byte_ranges() -> None:
    assert _byte_range(None, 100) is None
    assert _byte_range("bytes=0-9", 100) == (0, 9)
    assert _byte_range("bytes=90-", 100) == (90, 99)
    assert _byte_range("bytes=-10", 100) == (90, 99)
    assert _byte_range("bytes=50-500", 100) == (50, 99)
    assert _byte_range("bytes=0-1,5-6", 100) is None  # several: the whole file
    for bad in ("bytes=100-", "bytes=5-2", "bytes=-0"):
        with pytest.raises(_Unsatisfiable):
            _byte_range(bad, 100)


def test_cli_targets() -> None:
    assert split_target("wiki", need_path=False) == ("wiki", "")
    assert split_target("wiki:/conf/a.ini", need_path=False) == ("wiki", "conf/a.ini")
    with pytest.raises(ClientError):
        split_target(":x", need_path=False)
    with pytest.raises(ClientError):
        split_target("wiki", need_path=True)
