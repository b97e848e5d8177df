"""Stage store content on disk: bounded copies, limit checks and content hashes."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from stackhub.errors import Invalid, TooLarge

MAX_FILES = 20_000
MAX_BYTES = 300 * 1024 * 1024
SKIP_DIRS = {".git", ".hg", ".svn"}


def walk_files(root: Path, *, max_files: int | None = None,
               ) -> Iterator[tuple[str, Path, os.stat_result]]:
    """Yield (relative posix path, path, lstat) for regular files, sorted, links skipped.

    With `max_files`, raise TooLarge as soon as the walk finds more (before sorting).
    """
    stack = [root]
    found: list[tuple[str, Path, os.stat_result]] = []
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                info = entry.stat(follow_symlinks=False)
                path = Path(entry.path)
                if stat.S_ISDIR(info.st_mode):
                    if entry.name not in SKIP_DIRS:
                        stack.append(path)
                elif stat.S_ISREG(info.st_mode):
                    found.append((path.relative_to(root).as_posix(), path, info))
                    if max_files is not None and len(found) > max_files:
                        raise TooLarge(f"the store has more than {max_files} files")
    found.sort(key=lambda item: item[0])
    yield from found


def check_limits(root: Path, *, max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES) -> None:
    """Raise TooLarge when a staged tree holds too many files or bytes."""
    size = 0
    for _, _, info in walk_files(root, max_files=max_files):
        size += info.st_size
        if size > max_bytes:
            raise TooLarge(f"the store is larger than {max_bytes} bytes")


def stat_fingerprint(root: Path, *, max_files: int = MAX_FILES,
                     max_bytes: int = MAX_BYTES) -> str:
    """Fingerprint a tree by its files' paths and metadata, within the limits, reading nothing.

    Path, size, inode, device, mtime and ctime of every file the content hash covers: any write
    or rename changes the ctime (which no one can set back), so an equal fingerprint means the
    content hash is unchanged, as git's index assumes. Raises TooLarge as check_limits does.
    """
    digest = hashlib.sha256()
    size = 0
    for relative, _, info in walk_files(root, max_files=max_files):
        size += info.st_size
        if size > max_bytes:
            raise TooLarge(f"the store is larger than {max_bytes} bytes")
        digest.update(relative.encode("utf-8", "surrogateescape") + b"\x00" + (
            f"{info.st_size} {info.st_ino} {info.st_dev} {info.st_mtime_ns} "
            f"{info.st_ctime_ns}\n").encode())
    return "stat:" + digest.hexdigest()


def copy_tree(source: Path, dest: Path, *, max_files: int = MAX_FILES,
              max_bytes: int = MAX_BYTES) -> str:
    """Copy regular files and folders of `source` into `dest` (links and VCS folders skipped)
    and return the content hash of what was copied."""
    if not source.is_dir() or source.is_symlink():
        raise Invalid(f"{source} is not a directory")
    dest.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    for relative, path, _ in walk_files(source, max_files=max_files):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(max_bytes - size + 1)
        size += len(data)
        if size > max_bytes:
            raise TooLarge(f"the store is larger than {max_bytes} bytes")
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        digest.update(_entry(relative, hashlib.sha256(data).digest()))
    return "sha256:" + digest.hexdigest()


def _entry(relative: str, file_digest: bytes) -> bytes:
    """Return what one file adds to a tree hash: its path, a NUL, its content digest."""
    return relative.encode("utf-8", "surrogateescape") + b"\x00" + file_digest


def remove_vcs(root: Path) -> None:
    """Delete version-control folders at the top of a staged tree."""
    for name in SKIP_DIRS:
        folder = root / name
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)


def content_hash(root: Path) -> str:
    """Hash a tree: sha256 over sorted relative paths and file contents."""
    digest = hashlib.sha256()
    for relative, path, _ in walk_files(root):
        with path.open("rb") as handle:
            digest.update(_entry(relative, hashlib.file_digest(handle, "sha256").digest()))
    return "sha256:" + digest.hexdigest()


def safe_file(base: Path, relative: str) -> Path | None:
    """Return base/relative if it is a regular file inside base with no link on the way."""
    if not relative or "\x00" in relative or relative.startswith("/") or "\\" in relative:
        return None
    if ".." in Path(relative).parts:
        return None
    candidate = base / relative
    try:
        real = candidate.resolve(strict=True)
        base_real = base.resolve(strict=True)
    except OSError:
        return None
    # the real path equals the joined one only if no component below base is a link
    if real != base_real.joinpath(*Path(relative).parts) or not real.is_relative_to(base_real):
        return None
    info = real.lstat()
    return real if stat.S_ISREG(info.st_mode) else None
