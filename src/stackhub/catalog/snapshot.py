"""Stage store content on disk: bounded copies, limit checks and content hashes."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from stackhub.errors import Invalid, TooLarge

MAX_FILES = 20_000
MAX_BYTES = 300 * 1024 * 1024
SKIP_DIRS = {".git", ".hg", ".svn"}
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".ico", ".avif"})
LINKED_SUFFIXES = IMAGE_SUFFIXES  # what copy_tree hard-links rather than copies
CHUNK = 1024 * 1024


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
        digest.update(_stat_line(relative, info))
    return "stat:" + digest.hexdigest()


def _stat_line(relative: str, info: os.stat_result) -> bytes:
    """Return what one file adds to a stat fingerprint: its path and metadata."""
    return relative.encode("utf-8", "surrogateescape") + b"\x00" + (
        f"{info.st_size} {info.st_ino} {info.st_dev} {info.st_mtime_ns} "
        f"{info.st_ctime_ns}\n").encode()


def copy_tree(source: Path, dest: Path, *, max_files: int = MAX_FILES,
              max_bytes: int = MAX_BYTES) -> tuple[str, str]:
    """Copy regular files and folders of `source` into `dest` (links and VCS folders skipped);
    return the content hash of what was copied and the tree's stat fingerprint.

    Images (`LINKED_SUFFIXES`: only ever served, never parsed) are hard-linked instead when
    both folders share a file system and the kernel allows it, so their bytes are read once (to
    hash) and never written; anything else is copied. Linking changes a file's ctime, so the
    fingerprint records each linked file's metadata after the link and before hashing it: what
    `stat_fingerprint(source)` gives next time while the source is unchanged.
    """
    if not source.is_dir() or source.is_symlink():
        raise Invalid(f"{source} is not a directory")
    dest.mkdir(parents=True, exist_ok=True)
    digest, seen = hashlib.sha256(), hashlib.sha256()
    size = 0
    linking = True
    made: set[Path] = {dest}
    for relative, path, info in walk_files(source, max_files=max_files):
        target = dest / relative
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            linked, data = None, None
            if linking and path.suffix.lower() in LINKED_SUFFIXES:
                linked, linking = _link(path, target, os.fstat(fd))
            if linked is not None:
                info = linked
                file_digest, read = _read_digest(handle, max_bytes - size + 1)
            else:
                data = handle.read(max_bytes - size + 1)
                read, file_digest = len(data), hashlib.sha256(data).digest()
        size += read
        if size > max_bytes:
            raise TooLarge(f"the store is larger than {max_bytes} bytes")
        if data is not None:
            target.write_bytes(data)
        digest.update(_entry(relative, file_digest))
        seen.update(_stat_line(relative, info))
    return "sha256:" + digest.hexdigest(), "stat:" + seen.hexdigest()


def _link(path: Path, target: Path, opened: os.stat_result,
          ) -> tuple[os.stat_result | None, bool]:
    """Hard-link `path` at `target` if it is still the opened regular file.

    Returns the link's metadata (None: copy instead) and whether to keep trying links (no
    after EXDEV: the two folders are on different file systems).
    """
    try:
        os.link(path, target, follow_symlinks=False)  # a link swapped in is linked, not followed
    except OSError as err:  # other file system, protected_hardlinks, link count limit...
        return None, err.errno != errno.EXDEV
    linked = os.lstat(target)
    if stat.S_ISREG(linked.st_mode) and (linked.st_dev, linked.st_ino) == (opened.st_dev,
                                                                          opened.st_ino):
        return linked, True
    target.unlink()  # the path was swapped for something else since it was opened
    return None, True


def _read_digest(handle: BinaryIO, limit: int) -> tuple[bytes, int]:
    """Hash at most `limit` bytes of an open file in chunks; return the digest and the count."""
    digest, read = hashlib.sha256(), 0
    while read < limit and (chunk := handle.read(min(CHUNK, limit - read))):
        digest.update(chunk)
        read += len(chunk)
    return digest.digest(), read


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
    try:
        base_real = base.resolve(strict=True)
    except OSError:
        return None
    return safe_file_in(base_real, relative)


def safe_file_in(base_real: Path, relative: str) -> Path | None:
    """Like safe_file for a base already resolved: lstat each component below it, no link."""
    if not relative or "\x00" in relative or relative.startswith("/") or "\\" in relative:
        return None
    parts = Path(relative).parts
    if not parts or ".." in parts:
        return None
    current = str(base_real).rstrip("/")  # "/" + "/" + part would keep a double slash
    mode = 0
    for part in parts:
        current = f"{current}/{part}"
        try:
            mode = os.lstat(current).st_mode
        except OSError:  # missing, too long, or a file where a folder should be
            return None
        if stat.S_ISLNK(mode):
            return None
    return Path(current) if stat.S_ISREG(mode) else None
