"""Write files atomically and delete only inside known roots."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from stackhub.errors import Invalid, StackHubError, StorageFull


def write_error(err: OSError, what: str) -> StackHubError:
    """Translate a failed write of `what`: a full disk says so, anything else is Invalid."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(f"the disk holding StackHub's data is full while writing {what}: "
                           "free some space and try again (nothing was changed)")
    return Invalid(f"cannot write {what}: {err.strerror or err}")


def write_atomic(path: Path, data: str | bytes, *, mode: int = 0o600) -> None:
    """Write `data` to `path` via a temp file, fsync and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_tree_inside(path: Path, root: Path) -> bool:
    """Delete `path` only if it is a real directory directly inside `root`; say if it did."""
    if path.parent != root or path.name in ("", ".", ".."):
        raise Invalid(f"refusing to delete {path}: not directly inside {root}")
    if path.is_symlink():
        path.unlink()
        return True
    if not path.exists():
        return False
    shutil.rmtree(path)
    return True


_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _chown_fd(fd: int, owner: tuple[int, int] | None) -> None:
    if owner is not None:
        with contextlib.suppress(PermissionError):
            os.fchown(fd, *owner)


def _descend(root: Path, folders: list[str], owner: tuple[int, int] | None) -> int:
    """Open root/folders... one level at a time, creating what is missing, never via a link.

    Every step goes through a directory descriptor opened with O_NOFOLLOW, so a link planted
    (even concurrently, by a running container) cannot redirect it: it fails with OSError.
    Folders this call creates get `owner`; existing ones keep theirs. Returns the last fd.
    """
    fd = os.open(root, _DIR)
    try:
        for name in folders:
            created = False
            try:
                os.mkdir(name, 0o755, dir_fd=fd)
                created = True
            except FileExistsError:
                pass
            child = os.open(name, _DIR, dir_fd=fd)
            os.close(fd)
            fd = child
            if created:
                _chown_fd(fd, owner)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_inside(root: Path, relative: str, data: bytes, *, mode: int,
                  owner: tuple[int, int] | None = None) -> bool:
    """Create root/relative with `data` unless something is there; False if it was not written.

    Nothing is followed through links and nothing existing is replaced: the file is written
    under a temporary name in its folder and then hard-linked into place, which fails if the
    name was taken meanwhile. Folders created on the way and the file get `owner`.
    """
    *folders, name = relative.split("/")
    try:
        fd = _descend(root, folders, owner)
    except OSError:
        return False  # a link or a file where a folder should be: leave it alone
    temp = f".{name}.stackhub-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                      0o600, dir_fd=fd)
        try:
            _write_all(out, data)
            os.fchmod(out, mode)
            _chown_fd(out, owner)
            os.fsync(out)
        finally:
            os.close(out)
        try:
            os.link(temp, name, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=fd)
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def make_folders_inside(root: Path, relative: str, *, owner: tuple[int, int] | None) -> None:
    """Create root/relative (and missing parents) without following links; Invalid if a link
    or a non-folder is in the way."""
    try:
        os.close(_descend(root, [p for p in relative.split("/") if p], owner))
    except OSError as err:
        raise Invalid(f"cannot prepare {root / relative}: a link or a file is in the way "
                      f"({err.strerror}); StackHub never follows links in data folders - "
                      "remove it, or remove the instance with --purge first") from err
