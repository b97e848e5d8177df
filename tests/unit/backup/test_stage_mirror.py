"""The staging copy of volumes: only changed files copied, exact metadata, checked paths."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from stackhub.adapters.restic import Node
from stackhub.adapters.volumes import VolumeInfo
from stackhub.backup import flows, mirror_tool
from stackhub.errors import Invalid
from tests.unit.backup.test_restore_checks import _record


def _listing(root: Path) -> dict[str, tuple[object, ...]]:
    """Map each entry below `root` to (type and mode, owner, mtime, content or link)."""
    found: dict[str, tuple[object, ...]] = {}
    for base, dirs, files in os.walk(root):
        for entry in [*dirs, *files, "."]:
            path = Path(base) / entry
            st = path.lstat()
            content = os.readlink(path) if path.is_symlink() else \
                path.read_bytes() if stat.S_ISREG(st.st_mode) else None
            found[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_gid,
                                                   st.st_mtime_ns, content)
    return found


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    """A volume's tree with odd owners and modes, links, a hard link, a fifo and a socket."""
    src = tmp_path / "v" / "db"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_bytes(b"alpha")
    os.chown(src / "a", 1234, 99)
    (src / "a").chmod(0o4750)
    os.link(src / "a", src / "hard")
    (src / "link").symlink_to("a")
    os.mkfifo(src / "fifo")
    (src / "sub" / "x").write_bytes(os.urandom(5000))
    (src / "sub").chmod(0o700)
    src.chmod(0o751)
    return src


def _run(tmp_path: Path, mapped: bool = False) -> int:
    (tmp_path / "s").mkdir(exist_ok=True)
    return mirror_tool.main(["--mapped", "db"] if mapped else ["db"], str(tmp_path / "v"),
                            str(tmp_path / "s"))


def test_the_copy_is_exact_and_an_unchanged_volume_copies_nothing(
        volume: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path) == 0
    copy = tmp_path / "s" / "db"
    assert _listing(copy) == _listing(volume)
    assert (copy / "a").stat().st_ino == (copy / "hard").stat().st_ino
    # a, sub/x (hard: a link)
    assert "copied 2 files, updated 0 in place" in capsys.readouterr().out
    inodes = {p: p.lstat().st_ino for p in copy.rglob("*")}
    assert _run(tmp_path) == 0
    assert "copied 0 files" in capsys.readouterr().out
    assert {p: p.lstat().st_ino for p in copy.rglob("*")} == inodes  # restic skips them
    assert not (tmp_path / "s" / mirror_tool.PARTIAL).exists()


def test_changes_deletions_and_type_changes_are_mirrored(volume: Path, tmp_path: Path) -> None:
    assert _run(tmp_path) == 0
    (volume / "sub" / "x").unlink()
    (volume / "sub" / "x").mkdir()  # a file became a folder
    (volume / "link").unlink()
    (volume / "link").symlink_to("sub")
    (volume / "fifo").unlink()
    (volume / "a").write_bytes(b"alpha, longer")  # the hard link follows
    os.chown(volume / "sub", 33, 34)
    assert _run(tmp_path) == 0
    copy = tmp_path / "s" / "db"
    assert _listing(copy) == _listing(volume)
    assert (copy / "a").stat().st_ino == (copy / "hard").stat().st_ino
    (volume / "hard").unlink()  # no longer a hard link, content and times unchanged
    assert _run(tmp_path) == 0
    assert _listing(copy) == _listing(volume)
    assert (copy / "a").stat().st_nlink == 1


@pytest.mark.parametrize("mapped", [False, True], ids=["read", "mapped"])
def test_a_large_changed_file_is_updated_in_place_block_by_block(
        volume: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], mapped: bool) -> None:
    big = volume / "big.bin"
    size = 5 * mirror_tool.BLOCK + 123  # a partial last block
    big.write_bytes(os.urandom(size))
    os.chown(big, 70, 71)
    assert _run(tmp_path, mapped) == 0
    staged = tmp_path / "s" / "db" / "big.bin"
    inode, ctime = staged.stat().st_ino, staged.stat().st_ctime_ns
    capsys.readouterr()
    with big.open("r+b") as handle:  # a slice in the middle, as a database page write
        handle.seek(2 * mirror_tool.BLOCK + 10)
        handle.write(os.urandom(4096))
    os.utime(big, ns=(1_600_000_000_000_000_000, 1_600_000_000_123_456_789))
    assert _run(tmp_path, mapped) == 0
    assert "copied 0 files, updated 1 in place" in capsys.readouterr().out
    assert _listing(tmp_path / "s" / "db") == _listing(volume)
    after = staged.stat()
    assert after.st_ino == inode  # rewritten in place, not replaced
    assert after.st_ctime_ns != ctime  # restic reads it again: its changed time moved
    with big.open("ab") as handle:  # grows past a block
        handle.write(os.urandom(mirror_tool.BLOCK + 5))
    assert _run(tmp_path, mapped) == 0
    assert _listing(tmp_path / "s" / "db") == _listing(volume)
    os.truncate(big, mirror_tool.IN_PLACE + 1)  # shrinks, still large
    assert _run(tmp_path, mapped) == 0
    assert _listing(tmp_path / "s" / "db") == _listing(volume)
    assert staged.stat().st_ino == inode
    big.write_bytes(b"small now")  # under the size for in-place: copied whole
    assert _run(tmp_path, mapped) == 0
    assert "copied 1 files, updated 0 in place" in capsys.readouterr().out.splitlines()[-1]
    assert _listing(tmp_path / "s" / "db") == _listing(volume)


def test_an_update_cut_short_is_redone_by_the_next_run(volume: Path, tmp_path: Path) -> None:
    big = volume / "big.bin"
    big.write_bytes(os.urandom(3 * mirror_tool.BLOCK))
    assert _run(tmp_path) == 0
    staged = tmp_path / "s" / "db" / "big.bin"
    with big.open("r+b") as handle:
        handle.write(os.urandom(3 * mirror_tool.BLOCK))
    with staged.open("r+b") as handle:  # as if killed after its first block
        handle.write(big.read_bytes()[:mirror_tool.BLOCK])
    os.utime(staged, ns=(big.stat().st_atime_ns, big.stat().st_mtime_ns))  # the same tick
    partial = tmp_path / "s" / mirror_tool.PARTIAL
    partial.mkdir()
    (partial / mirror_tool.UPDATING).write_text(str(tmp_path / "s" / "db" / "big.bin"))
    assert _run(tmp_path) == 0
    assert staged.read_bytes() == big.read_bytes()
    assert _listing(tmp_path / "s" / "db") == _listing(volume)


def test_a_stage_entry_of_the_wrong_kind_is_replaced(volume: Path, tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "db").write_text("not a folder")
    assert _run(tmp_path) == 0
    assert _listing(tmp_path / "s" / "db") == _listing(volume)


def test_a_device_node_is_refused_with_its_own_exit_code(volume: Path, tmp_path: Path) -> None:
    os.mknod(volume / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    assert _run(tmp_path) == mirror_tool.UNSUPPORTED


def test_staged_folders_are_named_in_the_definition_and_found_on_restore(
        tmp_path: Path) -> None:
    info = VolumeInfo(name="stackhub-web_db", key="db")
    record = _record("web", "x")
    made = flows.definition_of(record, [info], None, {info.name})
    raw = made["volumes"][0]
    assert (raw.get("copy"), raw.get("path")) == ("folder", None)
    restored = tmp_path / "restored"
    with pytest.raises(Invalid, match="lacks the content"):
        flows.BackupFlows._content(restored, "web", info, raw)
    (restored / "backups" / "stage" / "web" / "volumes" / "db").mkdir(parents=True)
    assert flows.BackupFlows._content(restored, "web", info, raw).name == "db"
    with pytest.raises(Invalid, match="cannot be used as a file name"):
        flows.BackupFlows._content(restored, "web", info.model_copy(update={"key": "../x"}),
                                   raw)
    old = {k: v for k, v in raw.items() if k != "copy"}  # a tar, as earlier versions made
    (restored / "backups" / "stage" / "web" / "volumes" / "db.tar").write_bytes(b"")
    assert flows.BackupFlows._content(restored, "web", info, old).name == "db.tar"


def test_links_are_allowed_in_a_staged_volume_folder_only() -> None:
    base = "/backups/stage/web"
    nodes = [Node(path=f"{base}/volumes", type="dir"), Node(path=f"{base}/volumes/db", type="dir"),
             Node(path=f"{base}/volumes/db/link", type="symlink"),
             Node(path=f"{base}/volumes/db/fifo", type="fifo"),
             Node(path=f"{base}/volumes/db/x", type="file", size=7)]
    assert flows.check_paths(nodes, "web") == 7
    with pytest.raises(Invalid, match="symlink"):
        flows.check_paths([Node(path=f"{base}/link", type="symlink")], "web")
    with pytest.raises(Invalid, match="device"):
        flows.check_paths([*nodes[:2], Node(path=f"{base}/volumes/db/d", type="device")], "web")


def test_the_volume_mode_follows_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for raw, mode in (("", "stage"), ("tar", "tar"), ("helper", "tar"), ("odd", "stage")):
        monkeypatch.setenv("STACKHUB_BACKUP_VOLUMES", raw)
        assert flows.volume_mode() == mode


def test_a_waiting_copy_starts_only_when_told(volume: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "s").mkdir()
    monkeypatch.setattr(mirror_tool, "WAIT", 0.1)
    assert mirror_tool.main(["--wait", "db"], str(tmp_path / "v"),
                            str(tmp_path / "s")) == mirror_tool.NOT_TOLD
    assert not (tmp_path / "s" / "db").exists()
    (tmp_path / "s" / mirror_tool.GO).write_text("go\n")
    assert mirror_tool.main(["--wait", "db"], str(tmp_path / "v"), str(tmp_path / "s")) == 0
    assert _listing(tmp_path / "s" / "db") == _listing(volume)


@pytest.mark.parametrize("mapped", [False, True], ids=["read", "mapped"])
def test_the_blocks_found_different_are_exactly_the_changed_ones(
        tmp_path: Path, mapped: bool) -> None:
    """Both ways of comparing name every changed block and no other, the last one partial,
    at the first byte, the last byte and across a block boundary, and on an odd block count."""
    size = 7 * mirror_tool.BLOCK + 77
    data = bytearray(os.urandom(size))
    (tmp_path / "a").write_bytes(data)
    for at in (0, 3 * mirror_tool.BLOCK - 1, 3 * mirror_tool.BLOCK, size - 1):
        data[at] ^= 0xFF
    (tmp_path / "b").write_bytes(data)
    compare = mirror_tool._mapped_differences if mapped else mirror_tool._differences
    reader = os.open(tmp_path / "a", os.O_RDONLY)
    writer = os.open(tmp_path / "b", os.O_RDONLY)
    again = os.open(tmp_path / "a", os.O_RDONLY)
    try:
        found = compare(reader, writer, size)
        assert found == [0, 2 * mirror_tool.BLOCK, 3 * mirror_tool.BLOCK,
                         7 * mirror_tool.BLOCK]
        assert compare(reader, again, size) == []
        assert compare(reader, writer, 0) == []
    finally:
        for fd in (reader, writer, again):
            os.close(fd)
