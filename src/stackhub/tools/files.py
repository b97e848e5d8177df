"""The file manager's file system work, confined to one root folder and never following links.

Every path a caller gives is split into checked names and walked one name at a time through
directory descriptors opened with ``O_NOFOLLOW`` (the pattern of ``fsutil._descend``): a link
anywhere on the way, even one swapped in by a running container between two calls, makes the
open fail instead of leading outside the root. Links are listed (with their target text) but
never opened, read, written through, zipped or descended into; deletes and renames act on the
link itself. Names with a backslash, NUL or a control character are refused, so nothing can
turn into another path inside a zip or on another system.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from stackhub.errors import Conflict, Invalid, NotFound, StackHubError, StorageFull, TooLarge
from stackhub.tools.file_models import FileEntry, FolderRead, TextRead, TrashEntry

TRASH = ".stackhub-trash"
"""The per-root trash folder (hidden from listings, never a valid user path)."""
TRASH_DAYS = 7
TEXT_MAX = 1024 * 1024
UPLOAD_MAX = 8 * 1024 ** 3
FREE_RESERVE = 64 * 1024 * 1024  # never fill the disk completely
MAX_PATH = 4096
MAX_DEPTH = 64
CHUNK = 1024 * 1024
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK


def check_name(name: str) -> str:
    """Refuse a single path component that is empty, special or could change meaning."""
    if name in ("", ".", ".."):
        raise Invalid(f"{name!r} is not a file name: paths are relative to the data folder and "
                      "may not contain '.' or '..'")
    if "\\" in name or "/" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise Invalid(f"{name[:80]!r} is refused: names may not contain a backslash, NUL or "
                      "control characters")
    if len(name.encode("utf-8", "surrogateescape")) > 255:
        raise Invalid("a file name is longer than 255 bytes")
    return name


def split_path(path: str) -> list[str]:
    """Split a caller's relative path into checked names ('' or '.' is the root itself).

    Absolute paths, '..', '.' inside, empty components (``a//b``), backslashes and control
    characters are refused rather than normalised: a path means exactly one thing or nothing.
    """
    if path in ("", ".", "/"):
        return []
    if len(path) > MAX_PATH:
        raise Invalid("the path is too long")
    if path.startswith("/"):
        raise Invalid(f"{path[:80]!r} is absolute: give a path relative to the data folder")
    parts = path.rstrip("/").split("/")
    for part in parts:
        check_name(part)
    if parts[0] == TRASH:
        raise Invalid(f"{TRASH} is the trash: use the trash routes")
    return parts


def show(parts: list[str]) -> str:
    """Render checked names as the path callers see."""
    return "/".join(parts)


def _os_error(err: OSError, path: str) -> StackHubError:
    """Translate an OSError met at `path` into the error the caller should see."""
    where = path or "the data folder"
    if err.errno == errno.ENOENT:
        return NotFound(f"{where}: no such file or folder")
    if err.errno in (errno.ELOOP, errno.EMLINK):
        return Invalid(f"{where} is (or passes through) a link: StackHub never follows links "
                       "in data folders")
    if err.errno == errno.ENOTDIR:
        return Invalid(f"{where}: a part of the path is not a folder (or is a link)")
    if err.errno == errno.EISDIR:
        return Invalid(f"{where} is a folder")
    if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
        return Conflict(f"{where} already exists")
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(f"the disk is full while writing {where} (nothing was kept)")
    if err.errno == errno.EXDEV:
        return Invalid(f"{where}: cannot move across file systems")
    if err.errno == errno.EINVAL:
        return Invalid(f"{where}: invalid operation (a folder cannot move into itself)")
    return Invalid(f"{where}: {err.strerror or err}")


@dataclass(frozen=True)
class Root:
    """A confined folder: an instance's data folder or a volume's, and who should own files."""

    path: Path
    owner: tuple[int, int] | None = None
    label: str = ""

    def open(self) -> int:
        """Open the root folder itself (never through a link)."""
        try:
            return os.open(self.path, _DIR)
        except OSError as err:
            if err.errno == errno.ENOENT:
                raise NotFound(f"{self.label or self.path} has no data folder yet") from err
            raise _os_error(err, "") from err

    def open_dir(self, parts: list[str]) -> int:
        """Open root/parts... as a folder descriptor, one O_NOFOLLOW step at a time."""
        fd = self.open()
        try:
            for index, name in enumerate(parts):
                try:
                    child = os.open(name, _DIR, dir_fd=fd)
                except OSError as err:
                    raise _os_error(err, show(parts[: index + 1])) from err
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def parent(self, parts: list[str]) -> tuple[int, str]:
        """Open the folder holding the last name of `parts`; return (fd, that name)."""
        if not parts:
            raise Invalid("this needs a file or folder inside the data folder, not the root")
        return self.open_dir(parts[:-1]), parts[-1]


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def _entry(name: str, st: os.stat_result, dir_fd: int) -> FileEntry:
    target = None
    if stat.S_ISLNK(st.st_mode):
        with contextlib.suppress(OSError):
            target = os.readlink(name, dir_fd=dir_fd)
    return FileEntry(name=name, kind=_kind(st.st_mode), size=st.st_size,
                     modified=st.st_mtime, mode=f"{stat.S_IMODE(st.st_mode):04o}",
                     uid=st.st_uid, gid=st.st_gid, link_target=target)


def listing(root: Root, path: str) -> FolderRead:
    """List a folder with lstat (links are shown, never followed)."""
    parts = split_path(path)
    fd = root.open_dir(parts)
    try:
        entries = []
        with os.scandir(fd) as found:
            for item in found:
                if not parts and item.name == TRASH:
                    continue
                try:
                    st = os.stat(item.name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                entries.append(_entry(item.name, st, fd))
        entries.sort(key=lambda e: (e.kind != "folder", e.name.lower()))
        usage = shutil.disk_usage(f"/proc/self/fd/{fd}")
        return FolderRead(path=show(parts), entries=entries, free=usage.free)
    finally:
        os.close(fd)


def entry(root: Root, path: str) -> FileEntry:
    """Describe one file, folder or link (lstat)."""
    parts = split_path(path)
    if not parts:
        fd = root.open()
        try:
            return _entry(".", os.fstat(fd), fd)
        finally:
            os.close(fd)
    fd, name = root.parent(parts)
    try:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError as err:
            raise _os_error(err, path) from err
        found = _entry(name, st, fd)
        return found.model_copy(update={"name": show(parts)})
    finally:
        os.close(fd)


def open_file(root: Root, path: str) -> tuple[int, os.stat_result]:
    """Open a regular file for reading (never a link, device or fifo); the caller closes it."""
    parts = split_path(path)
    fd, name = root.parent(parts)
    try:
        try:
            out = os.open(name, _FILE, dir_fd=fd)
        except OSError as err:
            raise _os_error(err, path) from err
    finally:
        os.close(fd)
    st = os.fstat(out)
    if not stat.S_ISREG(st.st_mode):
        os.close(out)
        raise Invalid(f"{path} is a {_kind(st.st_mode)}, not a file")
    os.set_blocking(out, True)
    return out, st


def is_folder(root: Root, path: str) -> bool:
    """Say whether `path` is a real folder (a link to one is not)."""
    parts = split_path(path)
    if not parts:
        return True
    fd, name = root.parent(parts)
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError as err:
        raise _os_error(err, path) from err
    finally:
        os.close(fd)
    return stat.S_ISDIR(st.st_mode)


def read_range(fd: int, start: int, end: int) -> Iterator[bytes]:
    """Yield bytes start..end (inclusive) of an open file, then close it."""
    try:
        position = start
        while position <= end:
            chunk = os.pread(fd, min(CHUNK, end - position + 1), position)
            if not chunk:
                break
            position += len(chunk)
            yield chunk
    finally:
        os.close(fd)


def _chown(fd: int, owner: tuple[int, int] | None) -> None:
    if owner is not None:
        with contextlib.suppress(PermissionError):
            os.fchown(fd, *owner)


def free_bytes(dir_fd: int) -> int:
    """Bytes an unprivileged writer could still use on the folder's file system."""
    info = os.fstatvfs(dir_fd)
    return info.f_bavail * info.f_frsize


class Upload:
    """A file being received: a temp file in its target folder, renamed into place at the end.

    The size cap and the free space are checked before the first byte (from the declared
    length) and again while bytes arrive; any failure removes the temp file, so nothing is
    changed unless the whole upload succeeded.
    """

    def __init__(self, root: Root, path: str, *, declared: int | None, overwrite: bool,
                 cap: int = UPLOAD_MAX, reserve: int = FREE_RESERVE) -> None:
        """Check the target and the room, and create the temp file."""
        self.parts = split_path(path)
        self.path = show(self.parts)
        self.overwrite = overwrite
        self.cap = cap
        self.reserve = reserve
        self.written = 0
        self.root = root
        if declared is not None and declared > cap:
            raise TooLarge(f"{self.path}: {declared} bytes is over the upload limit of {cap}")
        self.dir_fd, self.name = root.parent(self.parts)
        try:
            self._check_target()
            self.room = free_bytes(self.dir_fd) - reserve
            if declared is not None and declared > self.room:
                raise StorageFull(f"not enough free space for {self.path}: {declared} bytes "
                                  f"needed, {max(self.room, 0)} available (nothing was changed)")
            self.temp = f".{self.name[:200]}.stackhub-upload-{uuid.uuid4().hex[:12]}"
            self.fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                              | os.O_CLOEXEC, 0o644, dir_fd=self.dir_fd)
        except BaseException:
            os.close(self.dir_fd)
            raise

    def _check_target(self) -> None:
        try:
            st = os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise Conflict(f"{self.path} is a folder")
        if not self.overwrite:
            raise Conflict(f"{self.path} already exists (upload with overwrite to replace it)")

    def write(self, chunk: bytes) -> None:
        """Append a chunk, enforcing the cap and the free space."""
        self.written += len(chunk)
        if self.written > self.cap:
            raise TooLarge(f"{self.path}: over the upload limit of {self.cap} bytes "
                           "(nothing was kept)")
        if self.written > self.room:
            raise StorageFull(f"not enough free space for {self.path} (nothing was kept)")
        view = memoryview(chunk)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError as err:
            raise _os_error(err, self.path) from err

    def commit(self) -> FileEntry:
        """Make the file visible under its name (replacing only a file or link, if allowed)."""
        try:
            os.fsync(self.fd)
            _chown(self.fd, self.root.owner)
            if self.overwrite:
                # rename replaces a directory entry; it never writes through a link there
                os.rename(self.temp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
            else:
                os.link(self.temp, self.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd,
                        follow_symlinks=False)
        except OSError as err:
            self.abort()
            if err.errno == errno.EISDIR:
                raise Conflict(f"{self.path} is a folder") from err
            raise _os_error(err, self.path) from err
        try:  # described through the folder it was written in, not by a new path walk
            st = os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)
            done = _entry(self.name, st, self.dir_fd).model_copy(update={"name": self.path})
        finally:
            self.abort()  # removes the temp name left by link(); closes descriptors
        return done

    def abort(self) -> None:
        """Drop the temp file and close everything (safe to call twice)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.dir_fd >= 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temp, dir_fd=self.dir_fd)
            os.close(self.dir_fd)
            self.dir_fd = -1


def make_folder(root: Root, path: str) -> FileEntry:
    """Create one new folder (its parent must exist), owned by the app's user."""
    parts = split_path(path)
    fd, name = root.parent(parts)
    try:
        try:
            os.mkdir(name, 0o755, dir_fd=fd)
            child = os.open(name, _DIR, dir_fd=fd)
        except OSError as err:
            raise _os_error(err, path) from err
        try:
            _chown(child, root.owner)
        finally:
            os.close(child)
    finally:
        os.close(fd)
    return entry(root, path)


def move(root: Root, source: str, destination: str) -> FileEntry:
    """Rename or move a file, folder or link (the link itself) inside the root; never replace."""
    src = split_path(source)
    dst = split_path(destination)
    if not src or not dst:
        raise Invalid("the data folder itself cannot be moved, nor replaced")
    if dst[: len(src)] == src:
        raise Invalid(f"cannot move {show(src)} into itself")
    src_fd, src_name = root.parent(src)
    try:
        dst_fd, dst_name = root.parent(dst)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.stat(dst_name, dir_fd=dst_fd, follow_symlinks=False)
                raise Conflict(f"{show(dst)} already exists")
            try:
                os.stat(src_name, dir_fd=src_fd, follow_symlinks=False)
                os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
            except OSError as err:
                raise _os_error(err, show(src)) from err
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)
    return entry(root, show(dst))


def _trash_fd(root: Root) -> int:
    fd = root.open()
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(TRASH, 0o700, dir_fd=fd)
        try:
            return os.open(TRASH, _DIR, dir_fd=fd)
        except OSError as err:
            raise Invalid(f"{TRASH} in the data folder is not a folder (or is a link): "
                          "remove it to use the trash") from err
    finally:
        os.close(fd)


def delete(root: Root, path: str) -> TrashEntry:
    """Move a file, folder or link (the link itself) to the root's trash."""
    parts = split_path(path)
    fd, name = root.parent(parts)
    try:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError as err:
            raise _os_error(err, path) from err
        trash = _trash_fd(root)
        try:
            item = f"{int(time.time())}-{uuid.uuid4().hex[:10]}"
            os.mkdir(item, 0o700, dir_fd=trash)
            slot = os.open(item, _DIR, dir_fd=trash)
            try:
                os.rename(name, "item", src_dir_fd=fd, dst_dir_fd=slot)
                origin = os.open("origin", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                                 0o600, dir_fd=slot)
                try:
                    os.write(origin, show(parts).encode("utf-8", "surrogateescape"))
                finally:
                    os.close(origin)
            except OSError as err:
                raise _os_error(err, path) from err
            finally:
                os.close(slot)
        finally:
            os.close(trash)
    finally:
        os.close(fd)
    return TrashEntry(id=item, path=show(parts), kind=_kind(st.st_mode),
                      deleted=time.time(), size=st.st_size)


def _remove_in(dir_fd: int, name: str) -> None:
    """Delete a name inside dir_fd for good, a folder recursively, following no link."""
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)  # fd-based on Linux: avoids symlink attacks
    else:
        os.unlink(name, dir_fd=dir_fd)


def trash_list(root: Root, *, now: float | None = None,
               keep_days: float = TRASH_DAYS) -> list[TrashEntry]:
    """List the trash, first emptying what is older than `keep_days`."""
    now = time.time() if now is None else now
    trash = _trash_fd(root)
    out: list[TrashEntry] = []
    try:
        for item in sorted(e.name for e in os.scandir(trash)):
            stamp = item.partition("-")[0]
            if not stamp.isdigit():
                continue
            if now - int(stamp) > keep_days * 86400:
                with contextlib.suppress(OSError):
                    _remove_in(trash, item)
                continue
            try:
                slot = os.open(item, _DIR, dir_fd=trash)
            except OSError:
                continue
            try:
                origin = _read_small(slot, "origin")
                st = os.stat("item", dir_fd=slot, follow_symlinks=False)
            except OSError:
                continue
            finally:
                os.close(slot)
            out.append(TrashEntry(id=item, path=origin, kind=_kind(st.st_mode),
                                  deleted=float(stamp), size=st.st_size))
    finally:
        os.close(trash)
    return sorted(out, key=lambda e: e.deleted, reverse=True)


def _read_small(dir_fd: int, name: str) -> str:
    fd = os.open(name, _FILE, dir_fd=dir_fd)
    try:
        return os.read(fd, MAX_PATH + 1).decode("utf-8", "surrogateescape")
    finally:
        os.close(fd)


def _check_trash_id(item: str) -> str:
    stamp, dash, rest = item.partition("-")
    if not (stamp.isdigit() and dash and rest.isalnum() and len(item) < 40):
        raise Invalid(f"{item[:60]!r} is not a trash entry")
    return item


def restore(root: Root, item: str) -> FileEntry:
    """Put a trashed item back where it was (refused if that name is taken again)."""
    trash = _trash_fd(root)
    try:
        try:
            slot = os.open(_check_trash_id(item), _DIR, dir_fd=trash)
        except OSError as err:
            raise NotFound(f"no trash entry {item}") from err
        try:
            origin = _read_small(slot, "origin")
            parts = split_path(origin)
            fd, name = root.parent(parts)
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.stat(name, dir_fd=fd, follow_symlinks=False)
                    raise Conflict(f"{origin} exists again: move it away first")
                try:
                    os.rename("item", name, src_dir_fd=slot, dst_dir_fd=fd)
                except OSError as err:
                    raise _os_error(err, origin) from err
            finally:
                os.close(fd)
        finally:
            os.close(slot)
        with contextlib.suppress(OSError):
            _remove_in(trash, item)
    finally:
        os.close(trash)
    return entry(root, origin)


def empty_trash(root: Root, item: str | None = None) -> int:
    """Delete trashed items for good (one, or all); return how many went."""
    trash = _trash_fd(root)
    try:
        names = [_check_trash_id(item)] if item else [e.name for e in os.scandir(trash)]
        count = 0
        for name in names:
            try:
                _remove_in(trash, name)
            except FileNotFoundError as err:
                if item:
                    raise NotFound(f"no trash entry {item}") from err
                continue
            count += 1
        return count
    finally:
        os.close(trash)


def etag_of(data: bytes) -> str:
    """The text editor's precondition: a digest of the content."""
    return hashlib.sha256(data).hexdigest()[:32]


def read_text(root: Root, path: str) -> TextRead:
    """Read a UTF-8 text file of at most 1 MiB, with its etag."""
    fd, st = open_file(root, path)
    try:
        if st.st_size > TEXT_MAX:
            raise TooLarge(f"{path} is {st.st_size} bytes: the editor opens files up to "
                           f"{TEXT_MAX} bytes (download it instead)")
        data = os.read(fd, TEXT_MAX + 1)
    finally:
        os.close(fd)
    if len(data) > TEXT_MAX:
        raise TooLarge(f"{path} grew over {TEXT_MAX} bytes")
    if b"\0" in data:
        raise Invalid(f"{path} is not a text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Invalid(f"{path} is not UTF-8 text") from err
    return TextRead(path=show(split_path(path)), content=text, etag=etag_of(data),
                    size=len(data))


def write_text(root: Root, path: str, content: str, etag: str | None) -> TextRead:
    """Save a text file if it still has `etag` (None: create it, refused if it exists)."""
    data = content.encode("utf-8")
    if len(data) > TEXT_MAX:
        raise TooLarge(f"the text is over {TEXT_MAX} bytes")
    parts = split_path(path)
    fd, name = root.parent(parts)
    try:
        mode, owner = 0o644, root.owner
        try:
            current_fd = os.open(name, _FILE, dir_fd=fd)
        except FileNotFoundError:
            if etag is not None:
                raise Conflict(f"{path} was deleted since you opened it") from None
        except OSError as err:
            raise _os_error(err, path) from err
        else:
            try:
                st = os.fstat(current_fd)
                if not stat.S_ISREG(st.st_mode):
                    raise Invalid(f"{path} is not a file")
                if etag is None:
                    raise Conflict(f"{path} already exists")
                current = os.read(current_fd, TEXT_MAX + 1)
                if etag_of(current) != etag:
                    raise Conflict(f"{path} changed since you opened it: reload it, then "
                                   "apply your change again", details={"etag": etag_of(current)})
                mode, owner = stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)
            finally:
                os.close(current_fd)
        temp = f".{name[:200]}.stackhub-edit-{uuid.uuid4().hex[:12]}"
        out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                      0o600, dir_fd=fd)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(out, view):]
                os.fchmod(out, mode)
                _chown(out, owner)
                os.fsync(out)
            finally:
                os.close(out)
            if etag is None:
                os.link(temp, name, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)
            else:
                os.rename(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
        except OSError as err:
            raise _os_error(err, path) from err
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=fd)
    finally:
        os.close(fd)
    return TextRead(path=show(parts), content=content, etag=etag_of(data), size=len(data))


def chown(root: Root, path: str, *, recursive: bool) -> int:
    """Give a file or folder (and, recursively, what it holds) to the app's PUID:PGID.

    Links are changed themselves (lchown), never their targets; returns how many entries.
    """
    if root.owner is None:
        raise Invalid("this folder has no app user to give files to")
    uid, gid = root.owner
    parts = split_path(path)
    count = 0

    def walk(dir_fd: int, depth: int) -> None:
        nonlocal count
        if depth > MAX_DEPTH:
            raise Invalid(f"{path} is nested deeper than {MAX_DEPTH} folders")
        for name in [e.name for e in os.scandir(dir_fd)]:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
            count += 1
            if stat.S_ISDIR(st.st_mode):
                child = os.open(name, _DIR, dir_fd=dir_fd)
                try:
                    walk(child, depth + 1)
                finally:
                    os.close(child)

    try:
        if parts:
            fd, name = root.parent(parts)
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
                count += 1
                if recursive and stat.S_ISDIR(st.st_mode):
                    child = os.open(name, _DIR, dir_fd=fd)
                    try:
                        walk(child, 1)
                    finally:
                        os.close(child)
            finally:
                os.close(fd)
        else:
            fd = root.open()
            try:
                os.fchown(fd, uid, gid)
                count += 1
                if recursive:
                    walk(fd, 1)
            finally:
                os.close(fd)
    except OSError as err:
        raise _os_error(err, path) from err
    return count


class _Sink:
    """A write-only, unseekable stream that hands out what was written so far."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes, /) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def close(self) -> None:
        """Nothing to close: the generator drains the parts."""

    def flush(self) -> None:
        """Nothing to flush: the generator drains the parts."""

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


def _zip_members(dir_fd: int, prefix: str, depth: int,
                 skipped: list[str]) -> Iterator[tuple[str, int | None, os.stat_result]]:
    """Yield (archive name, open fd or None for a folder, stat) below dir_fd, links skipped."""
    if depth > MAX_DEPTH:
        skipped.append(prefix)
        return
    for name in sorted(e.name for e in os.scandir(dir_fd)):
        if depth == 0 and name == TRASH:
            continue
        try:
            check_name(name)
        except Invalid:
            skipped.append(prefix + name)
            continue
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                child = os.open(name, _DIR, dir_fd=dir_fd)
            except OSError:
                skipped.append(prefix + name)  # swapped for a link meanwhile
                continue
            try:
                yield prefix + name + "/", None, st
                yield from _zip_members(child, prefix + name + "/", depth + 1, skipped)
            finally:
                os.close(child)
        elif stat.S_ISREG(st.st_mode):
            try:
                fd = os.open(name, _FILE, dir_fd=dir_fd)
            except OSError:
                skipped.append(prefix + name)
                continue
            file_st = os.fstat(fd)
            if not stat.S_ISREG(file_st.st_mode):
                os.close(fd)
                skipped.append(prefix + name)
                continue
            os.set_blocking(fd, True)
            yield prefix + name, fd, file_st
        else:
            skipped.append(prefix + name)  # links, sockets, devices: never in a zip


def zip_folder(root: Root, path: str) -> Iterator[bytes]:
    """Stream a folder as a ZIP64 archive: regular files and folders only, names checked.

    The folder is opened now (errors before any byte is sent); the archive is made as the
    stream is read.
    """
    return _zip_stream(root.open_dir(split_path(path)))


def _zip_stream(fd: int) -> Iterator[bytes]:
    sink = _Sink()
    skipped: list[str] = []
    try:
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED,
                             allowZip64=True, compresslevel=1) as archive:
            for name, member_fd, st in _zip_members(fd, "", 0, skipped):
                info = zipfile.ZipInfo(name, date_time=time.localtime(
                    max(st.st_mtime, 315532800))[:6])
                info.external_attr = (st.st_mode & 0xFFFF) << 16
                if member_fd is None:
                    archive.writestr(info, b"")
                    yield sink.take()
                    continue
                info.compress_type = zipfile.ZIP_DEFLATED
                try:
                    with archive.open(info, "w", force_zip64=st.st_size > 2 ** 31) as out:
                        while chunk := os.read(member_fd, CHUNK):
                            out.write(chunk)
                            data = sink.take()
                            if data:
                                yield data
                finally:
                    os.close(member_fd)
                yield sink.take()
        yield sink.take()
    finally:
        os.close(fd)


def copy_out(root: Root, path: str, dest: BinaryIO) -> int:
    """Copy a regular file into an open stream (tests and tools); return the byte count."""
    fd, st = open_file(root, path)
    total = 0
    for chunk in read_range(fd, 0, st.st_size - 1 if st.st_size else -1):
        dest.write(chunk)
        total += len(chunk)
    return total
