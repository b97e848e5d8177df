"""Mirror volumes into staging folders, copying only changed files (run in a helper container).

Standalone (standard library only): its text runs as `python3 -I -c <text> <key>...` in a helper
container that mounts each volume read-only at `/v/<key>` and the staging folder read-write at
`/s`, and makes `/s/<key>` an exact copy of `/v/<key>`: a file whose size and modification time
match is left alone (so restic skips it by its metadata); a large file the staging copy already
holds is rewritten in place, only its blocks that differ (an app changes a slice of a big file;
its changed time tells restic to read it again); others are copied to `/s/+partial` then
renamed in place; entries gone from the volume go; owners, modes, times, links, hard
links, fifos and sockets are kept. With `--wait` first it waits for `/s/+go` before copying
(the helper is started before the app is stopped, so its start is not downtime); with
`--mapped` next (the app is stopped) large files are compared mapped, two threads at once,
instead of read through buffers. Exit codes:
0 done, 3 an entry it cannot copy (a device), 4 never told to go, 28 no space left, 1 anything
else (the reason on stderr).
"""

# ruff: noqa: PTH101, PTH102, PTH104, PTH106, PTH108, PTH113, PTH114, PTH115, PTH118, PTH211
# (plain os calls on str paths: their no-follow flags matter here)
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import sys
import time

PARTIAL = "+partial"
UPDATING = "updating"  # in PARTIAL while a file is rewritten in place: that file's path
GO = "+go"
UNSUPPORTED = 3
NOT_TOLD = 4
NO_SPACE = 28
WAIT = 3600.0
IN_PLACE = 1 << 20  # files at least this large (on both sides) are updated block by block
BLOCK = 1 << 20


class Unsupported(Exception):
    """An entry the mirror cannot copy (a device node)."""


def _drop(path: str) -> None:
    """Remove a file, link or folder tree (links never followed)."""
    if stat.S_ISDIR(os.lstat(path).st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def _meta(path: str, src: os.stat_result, have: os.stat_result | None) -> None:
    """Give `path` the owner, mode and times of `src` where they differ from `have`."""
    link = stat.S_ISLNK(src.st_mode)
    if have is None or (have.st_uid, have.st_gid) != (src.st_uid, src.st_gid):
        os.chown(path, src.st_uid, src.st_gid, follow_symlinks=False)
        have = None  # a chown clears set-id bits: set the mode again
    if not link and (have is None or have.st_mode != src.st_mode):
        os.chmod(path, stat.S_IMODE(src.st_mode))
    if have is None or have.st_mtime_ns != src.st_mtime_ns:
        os.utime(path, ns=(src.st_atime_ns, src.st_mtime_ns), follow_symlinks=False)


def _put(fd: int, data: bytes, offset: int) -> None:
    """Write all of `data` at `offset`."""
    view = memoryview(data)
    while view:
        done = os.pwrite(fd, view, offset)
        view, offset = view[done:], offset + done


def _differences(reader: int, writer: int, common: int) -> list[int]:
    """Offsets of the blocks within the first `common` bytes where the files differ."""
    found: list[int] = []
    with open(reader, "rb", buffering=0, closefd=False) as one, \
            open(writer, "rb", buffering=0, closefd=False) as other:
        one.seek(0)
        other.seek(0)
        for offset in range(0, common, BLOCK):
            size = min(BLOCK, common - offset)
            block = one.read(size)  # kept through the next read: malloc then reuses the
            if other.read(size) != block:  # freed block instead of handing it back (faults)
                found.append(offset)
    return found


def _mapped_differences(reader: int, writer: int, common: int) -> list[int] | None:
    """`_differences` read straight from the page cache: both files mapped, compared by
    libc's memcmp on two threads (no copy into Python; memcmp releases the GIL). None when
    mapping is not possible here (the caller reads instead).

    Only for files nothing writes meanwhile (the app is stopped): a file cut shorter while
    mapped would kill the process (SIGBUS)."""
    if common == 0:
        return []
    try:
        import ctypes
        import mmap
        from concurrent.futures import ThreadPoolExecutor

        memcmp = ctypes.CDLL(None).memcmp
        memcmp.restype = ctypes.c_int
        memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        maps = [mmap.mmap(fd, common, access=mmap.ACCESS_COPY) for fd in (reader, writer)]
    except (ImportError, OSError, ValueError, AttributeError):
        return None
    try:
        views = [ctypes.c_char.from_buffer(m) for m in maps]
        first, second = (ctypes.addressof(v) for v in views)

        def differing(start: int, end: int) -> list[int]:
            return [offset for offset in range(start, end, BLOCK)
                    if memcmp(first + offset, second + offset, min(BLOCK, common - offset))]

        half = (common // BLOCK + 1) // 2 * BLOCK
        with ThreadPoolExecutor(2) as pool:
            parts = list(pool.map(differing, (0, half), (half, common)))
        del views
        return parts[0] + parts[1]
    finally:
        for m in maps:
            with contextlib.suppress(BufferError):  # still exported after a failure: the
                m.close()  # mapping goes with the process


class Mirror:
    """One run: copies made, links seen (by source inode), temporary folder."""

    def __init__(self, partial: str, mapped: bool = False) -> None:
        """Remember where partial copies go, and whether files may be compared mapped."""
        self.partial = partial
        self.mapped = mapped
        self.links: dict[tuple[int, int], str] = {}
        self.copied = 0
        self.updated = 0

    def _copy(self, src: str, dest: str, info: os.stat_result) -> None:
        temp = os.path.join(self.partial, "file")
        shutil.copyfile(src, temp, follow_symlinks=False)
        _meta(temp, info, None)
        if os.path.lexists(dest) and stat.S_ISDIR(os.lstat(dest).st_mode):
            shutil.rmtree(dest)
        os.rename(temp, dest)
        self.copied += 1

    def _update(self, src: str, dest: str, info: os.stat_result) -> None:
        """Rewrite only the blocks of the staged `dest` that differ from `src`, then its size
        and metadata. A marker names the file meanwhile: a run cut short leaves it, and the
        next run removes that file first (its times alone cannot tell it was cut short)."""
        marker = os.path.join(self.partial, UPDATING)
        with open(marker, "w", encoding="utf-8") as note:
            note.write(dest)
        flags = os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        reader = os.open(src, os.O_RDONLY | flags)
        try:
            writer = os.open(dest, os.O_RDWR | flags)
            try:
                common = min(os.fstat(reader).st_size, os.fstat(writer).st_size)
                found = _mapped_differences(reader, writer, common) if self.mapped else None
                for offset in found if found is not None else _differences(reader, writer,
                                                                            common):
                    _put(writer, os.pread(reader, BLOCK, offset), offset)
                offset = common
                while block := os.pread(reader, BLOCK, offset):  # what the volume added
                    _put(writer, block, offset)
                    offset += len(block)
                if offset == common:  # nothing added: keep the volume's size if it shrank
                    offset = min(common, os.fstat(reader).st_size)
                os.ftruncate(writer, offset)
            finally:
                os.close(writer)
        finally:
            os.close(reader)
        _meta(dest, info, os.lstat(dest))
        os.unlink(marker)
        self.updated += 1

    def _file(self, src: str, dest: str, info: os.stat_result,
              have: os.stat_result | None) -> None:
        ident = (info.st_dev, info.st_ino)
        first = self.links.get(ident) if info.st_nlink > 1 else None
        if first is not None:  # a hard link to a file copied already
            if have is not None and os.lstat(first).st_ino == have.st_ino:
                return
            if have is not None:
                _drop(dest)
            os.link(first, dest)
            return
        if info.st_nlink > 1:
            self.links[ident] = dest  # copies replace by rename: other links keep the old
        if have is None or have.st_size != info.st_size or \
                have.st_mtime_ns != info.st_mtime_ns or \
                (info.st_nlink == 1 and have.st_nlink > 1):  # a link the volume no longer has
            if have is not None and info.st_nlink == 1 and have.st_nlink == 1 and \
                    min(have.st_size, info.st_size) >= IN_PLACE:
                self._update(src, dest, info)
            else:
                self._copy(src, dest, info)
        else:
            _meta(dest, info, have)

    def sync(self, src: str, dest: str) -> None:
        """Make folder `dest` hold exactly what folder `src` holds (both exist)."""
        found = {e.name: e.stat(follow_symlinks=False) for e in os.scandir(src)}
        present = {e.name: e.stat(follow_symlinks=False) for e in os.scandir(dest)}
        for name in present.keys() - found.keys():
            _drop(os.path.join(dest, name))
        for name in sorted(found):
            info, have = found[name], present.get(name)
            s, d = os.path.join(src, name), os.path.join(dest, name)
            if have is not None and stat.S_IFMT(have.st_mode) != stat.S_IFMT(info.st_mode):
                _drop(d)
                have = None
            kind = stat.S_IFMT(info.st_mode)
            if kind == stat.S_IFDIR:
                if have is None:
                    os.mkdir(d, 0o700)
                self.sync(s, d)
                _meta(d, info, os.lstat(d))
            elif kind == stat.S_IFREG:
                self._file(s, d, info, have)
            elif kind == stat.S_IFLNK:
                target = os.readlink(s)
                if have is not None and os.readlink(d) != target:
                    os.unlink(d)
                    have = None
                if have is None:
                    os.symlink(target, d)
                _meta(d, info, have)
            elif kind == stat.S_IFIFO:
                if have is None:
                    os.mkfifo(d, 0o600)
                _meta(d, info, have)
            elif kind == stat.S_IFSOCK:
                if have is None:
                    with socket.socket(socket.AF_UNIX) as sock:
                        sock.bind(d)
                _meta(d, info, have)
            else:
                raise Unsupported(f"{s} is a device node, which the staging copy does not take")


def _forget_cut_update(partial: str, stage: str) -> None:
    """Remove the staged file an earlier run was rewriting in place when it was cut short."""
    marker = os.path.join(partial, UPDATING)
    if not os.path.isfile(marker) or os.path.islink(marker):
        return
    with open(marker, encoding="utf-8") as note:
        path = os.path.normpath(note.read())
    if path.startswith(stage.rstrip("/") + "/") and os.path.lexists(path):
        _drop(path)


def main(args: list[str], volumes: str = "/v", stage: str = "/s") -> int:
    """Mirror `volumes/<key>` into `stage/<key>` for each key; return the exit code."""
    partial = os.path.join(stage, PARTIAL)
    if args[:1] == ["--wait"]:
        args = args[1:]
        end = time.monotonic() + WAIT
        while not os.path.lexists(os.path.join(stage, GO)):
            if time.monotonic() > end:
                return NOT_TOLD
            time.sleep(0.005)
    mapped = args[:1] == ["--mapped"]  # the app is stopped: files may be compared mapped
    args = args[1:] if mapped else args
    try:
        if os.path.lexists(partial):
            _forget_cut_update(partial, stage)
            _drop(partial)
        os.mkdir(partial, 0o700)
        copied = updated = 0
        for key in args:
            src, dest = os.path.join(volumes, key), os.path.join(stage, key)
            if os.path.lexists(dest) and not stat.S_ISDIR(os.lstat(dest).st_mode):
                _drop(dest)
            if not os.path.lexists(dest):
                os.mkdir(dest, 0o700)
            run = Mirror(partial, mapped)
            run.sync(src, dest)
            _meta(dest, os.lstat(src), os.lstat(dest))
            copied += run.copied
            updated += run.updated
        os.rmdir(partial)
        print(f"copied {copied} files, updated {updated} in place", flush=True)
        return 0
    except Unsupported as err:
        print(str(err), file=sys.stderr, flush=True)
        return UNSUPPORTED
    except OSError as err:
        print(f"{err.strerror or err}: {err.filename or ''}", file=sys.stderr, flush=True)
        return NO_SPACE if err.errno == 28 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
