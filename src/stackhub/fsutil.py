"""Write files atomically and delete only inside known roots."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
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
