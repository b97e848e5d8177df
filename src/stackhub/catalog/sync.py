"""Sync one store: fetch into staging, read every app, swap in and re-index atomically."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import secrets
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from stackhub import fsutil
from stackhub.adapters.fetch import MAX_DOWNLOAD, Fetcher, check_url, extract
from stackhub.adapters.git import Git
from stackhub.catalog.index import IndexEntry, flag_updates, replace_store
from stackhub.catalog.models import StoreKind, SyncResult
from stackhub.catalog.readers.detect import locate_store_root, scan_store
from stackhub.catalog.snapshot import (
    MAX_BYTES,
    check_limits,
    content_hash,
    copy_tree,
    remove_vcs,
    safe_file,
    safe_file_in,
    stat_fingerprint,
)
from stackhub.errors import Invalid, NotFound, StackHubError, StoreError
from stackhub.state.db import Database, now

log = logging.getLogger("stackhub.catalog")
SYNC_TIMEOUT = 300.0
INDEX_VERSION = 5  # bump when readers change what they produce: forces a re-index
FEATURED_FILE = "featured-apps.json"
MAX_FEATURED_BYTES = 64 * 1024
ICON_NAMES = ("icon.png", "icon.svg", "icon.jpg", "icon.webp", "logo.png", "logo.svg",
              "logo.jpg", "metadata/logo.jpg", "metadata/logo.png")


@dataclass(frozen=True)
class StoreRow:
    """The stored configuration and sync state of one store."""

    name: str
    kind: StoreKind
    source: str
    branch: str | None
    trusted: bool
    revision: str | None
    index_key: str | None
    snapshot: str | None
    max_bytes: int = MAX_BYTES

    @classmethod
    def of(cls, row: sqlite3.Row) -> StoreRow:
        """Decode a `stores` row."""
        return cls(name=row["name"], kind=StoreKind(row["kind"]), source=row["source"],
                   branch=row["branch"], trusted=bool(row["trusted"]), revision=row["revision"],
                   index_key=row["index_key"], snapshot=row["snapshot"],
                   max_bytes=row["max_bytes"] or MAX_BYTES)


@dataclass
class SyncContext:
    """What a sync needs: the database, the stores folder and the two source adapters."""

    db: Database
    stores_dir: Path
    git: Git
    fetcher: Fetcher
    arch: str
    timeout: float = SYNC_TIMEOUT

    def snapshot_dir(self, row: StoreRow) -> Path | None:
        """Return the folder of a store's current snapshot, if it has one on disk."""
        if not row.snapshot:
            return None
        folder = self.stores_dir / row.name / row.snapshot
        return folder if folder.is_dir() else None


def git_url(source: str, *, local: bool) -> tuple[str, str | None]:
    """Check a git source: https for everyone; paths, file:// and http:// for local stores.

    Returns the URL and, for a remote store, the checked public address git must connect to.
    """
    if source.startswith("https://"):
        return source, check_url(source, local=local)
    if local and (source.startswith(("file:///", "http://")) or source.startswith("/")):
        if source.startswith("http://"):
            check_url(source, local=True)
        return source, None
    raise Invalid("git stores must use an https URL; an admin may add a local store (--local) "
                  "from a path, a file:// or an http:// URL", details={"reason": "trust_required"})


def _stage(ctx: SyncContext, row: StoreRow, tree: Path, *, force: bool) -> str | None:
    """Fetch the store into `tree`; return its revision, or None when known to be unchanged."""
    if row.kind is StoreKind.GIT:
        url, address = git_url(row.source, local=row.trusted)
        head = ctx.git.remote_head(url, row.branch, local=row.trusted, timeout=ctx.timeout,
                                   address=address)
        if head == row.revision and not force and ctx.snapshot_dir(row):
            return None
        commit = ctx.git.clone(url, row.branch, tree, local=row.trusted, timeout=ctx.timeout,
                               address=address, max_bytes=row.max_bytes)
        remove_vcs(tree)
        check_limits(tree, max_bytes=row.max_bytes)
        return commit
    if row.kind is StoreKind.ARCHIVE:
        archive = tree.parent / "archive"
        ctx.fetcher.download(row.source, archive, local=row.trusted, timeout=ctx.timeout,
                             max_bytes=min(row.max_bytes, MAX_DOWNLOAD))
        extract(archive, tree)
        archive.unlink()
        check_limits(tree, max_bytes=row.max_bytes)
        return content_hash(tree)
    if not row.trusted:
        raise Invalid("a directory store must be added as local by an admin")
    source = Path(row.source)
    # files' metadata as last hashed: equal means unchanged without reading 200 MB again
    marker = ctx.stores_dir / f".stat-{row.name}"
    if not force and ctx.snapshot_dir(row) and row.revision:  # else copy_tree checks the limits
        seen = stat_fingerprint(source, max_bytes=row.max_bytes)
        with contextlib.suppress(OSError):
            if marker.read_text() == f"{row.revision} {seen}":
                return None
        if content_hash(source) == row.revision:
            _remember(marker, f"{row.revision} {seen}")
            return None  # hashing in place is cheaper than copying unchanged content
    # each file's metadata from before it was read (or after it was linked): a file changed
    # meanwhile differs next time and is hashed
    revision, seen = copy_tree(source, tree, max_bytes=row.max_bytes)
    _remember(marker, f"{revision} {seen}")
    return revision


def _remember(marker: Path, text: str) -> None:
    """Keep a directory store's last fingerprint (a cache: losing it costs one content hash)."""
    with contextlib.suppress(OSError):
        marker.parent.mkdir(parents=True, exist_ok=True)
        fsutil.write_atomic(marker, text, mode=0o600)


def _asset(tree: Path, folder: Path | None, ref: str | None) -> str | None:
    """Return an asset as a path relative to the snapshot, or an external https URL.

    `tree` and `folder` are resolved already (read_entries): no link is followed below them.
    """
    if not ref:
        return None
    if ref.startswith(("https://", "http://")):
        name = ref.rsplit("/", 1)[-1].split("?")[0]
        local = _asset(tree, folder, name) if folder and name else None
        return local or (ref if ref.startswith("https://") else None)
    for base in ([folder] if folder else []) + [tree]:
        path = safe_file_in(base, ref)
        if path is not None:
            return path.relative_to(tree).as_posix()
    return None


def read_entries(tree: Path, store: str, *, arch: str,
                 installed: set[str]) -> tuple[Path, list[IndexEntry], list[str]]:
    """Read every app of a staged store (any format) with its icon and screenshots."""
    root, _ = locate_store_root(tree)
    _, scanned = scan_store(tree, store, arch=arch, installed=lambda app: app in installed)
    featured = featured_ids(root)
    tree_real = tree.resolve(strict=True)
    entries: list[IndexEntry] = []
    errors: list[str] = []
    for item in scanned:
        if item.app is None:
            where = "store" if item.folder == root else item.folder.name
            errors.append(f"{where}: {item.error or 'unreadable'}")
            continue
        app = item.app
        folder: Path | None = item.folder.resolve()
        if folder is not None and not folder.is_relative_to(tree_real):
            folder = None  # reached through a link out of the tree: only the tree's paths count
        icon = _asset(tree_real, folder, app.icon)
        if icon is None:
            icon = next((found for name in ICON_NAMES
                         if (found := _asset(tree_real, folder, name))), None)
        shots = [s for s in (_asset(tree_real, folder, ref) for ref in app.screenshots) if s]
        entries.append(IndexEntry(app=app, icon=icon, screenshots=shots,
                                  featured=app.id.lower() in featured))
    return root, entries, errors


def featured_ids(root: Path) -> set[str]:
    """Return the (lowercase) app ids a store features: CasaOS's ``featured-apps.json``."""
    path = safe_file(root, FEATURED_FILE)
    try:
        if path is None or path.stat().st_size > MAX_FEATURED_BYTES:
            return set()
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return set()
    items = data if isinstance(data, list) else []
    return {str(item["appid"]).lower() for item in items[:500]
            if isinstance(item, dict) and isinstance(item.get("appid"), str)}


def installed_ids(db: Database) -> set[str]:
    """Return the app ids of installed instances (dependencies name apps by id)."""
    rows = db.query("SELECT DISTINCT app_ref FROM instances")
    return {str(r["app_ref"]).rsplit("/", 1)[-1] for r in rows}


def index_key(revision: str, installed: set[str]) -> str:
    """Fingerprint what an index was built from: content, installed apps, reader version."""
    text = json.dumps([INDEX_VERSION, revision, sorted(installed)])
    return hashlib.sha256(text.encode()).hexdigest()


def load(db: Database, name: str) -> StoreRow:
    """Return one store row or raise NotFound."""
    rows = db.query("SELECT * FROM stores WHERE name = ?", (name,))
    if not rows:
        raise NotFound(f"no store named {name!r}")
    return StoreRow.of(rows[0])


def sync_store(ctx: SyncContext, name: str, *, force: bool = False) -> SyncResult:
    """Sync one store; on failure the previous catalog stays and the error is recorded."""
    started = time.monotonic()
    row = load(ctx.db, name)
    installed = installed_ids(ctx.db)
    ctx.stores_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".sync-{name}-", dir=ctx.stores_dir))
    try:
        tree = staging / "tree"
        revision = _stage(ctx, row, tree, force=force) or str(row.revision)
        current = ctx.snapshot_dir(row)
        same = revision == row.revision and current is not None and not force
        key = index_key(revision, installed)
        if same and key == row.index_key:
            with ctx.db.transaction() as conn:
                _mark_ok(conn, name)
                flagged = flag_updates(conn, name)
            count, errors = _stored_state(ctx.db, name)
            return SyncResult(store=name, changed=False, revision=revision, app_count=count,
                              app_errors=errors, updates=flagged,
                              seconds=time.monotonic() - started)
        # same content but other installed apps (dependencies): re-read the current snapshot
        source = current if same and current is not None else tree
        root, entries, errors = read_entries(source, name, arch=ctx.arch, installed=installed)
        if not entries:
            detail = f" ({'; '.join(errors[:3])})" if errors else ""
            raise StoreError(f"no readable apps found{detail}")
        flagged = _swap_in(ctx, row, source, revision=revision, key=key,
                           root=root.relative_to(source).as_posix(), entries=entries,
                           errors=errors, in_place=source is current)
        log.info("store %s synced: %d apps, %d errors", name, len(entries), len(errors))
        return SyncResult(store=name, changed=not same, revision=revision,
                          app_count=len(entries), app_errors=errors, updates=flagged,
                          seconds=time.monotonic() - started)
    except Exception as err:  # any failure, even a reader bug, keeps the previous catalog
        if isinstance(err, StackHubError):
            message = err.message
        elif isinstance(err, OSError):
            message = str(err)
        else:
            log.exception("store %s: unexpected error during sync", name)
            message = f"internal error ({type(err).__name__}: {err})"
        _mark_failed(ctx.db, name, message)
        raise StoreError(f"sync of store {name!r} failed: {message}") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_in(ctx: SyncContext, row: StoreRow, tree: Path, *, revision: str, key: str,
             root: str, entries: list[IndexEntry], errors: list[str],
             in_place: bool) -> list[str]:
    """Move the staged tree into place and re-index in one transaction; prune old snapshots."""
    store_dir = ctx.stores_dir / row.name
    store_dir.mkdir(exist_ok=True)
    snapshot = tree.name if in_place else f"{revision.split(':')[-1][:12]}-{secrets.token_hex(4)}"
    final = store_dir / snapshot
    if not in_place:
        tree.rename(final)  # same file system: an atomic move into place
    try:
        with ctx.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM stores WHERE name = ?", (row.name,)).fetchone() is None:
                raise NotFound(f"store {row.name!r} was removed during its sync")
            replace_store(conn, row.name, entries)
            conn.execute("UPDATE stores SET revision = ?, index_key = ?, snapshot = ?, root = ?, "
                         "app_count = ?, app_errors = ? WHERE name = ?",
                         (revision, key, snapshot, "" if root == "." else root, len(entries),
                          json.dumps(errors), row.name))
            _mark_ok(conn, row.name)
            flagged = flag_updates(conn, row.name)
    except BaseException:
        if not in_place:
            shutil.rmtree(final, ignore_errors=True)
        raise
    for old in store_dir.iterdir():
        if old.name != snapshot and old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
    return flagged


def _mark_ok(conn: sqlite3.Connection, name: str) -> None:
    stamp = now()
    conn.execute("UPDATE stores SET last_sync = ?, last_attempt = ?, last_error = NULL "
                 "WHERE name = ?", (stamp, stamp, name))


def _mark_failed(db: Database, name: str, message: str) -> None:
    with db.transaction() as conn:
        conn.execute("UPDATE stores SET last_attempt = ?, last_error = ? WHERE name = ?",
                     (now(), message[:2000], name))


def _stored_state(db: Database, name: str) -> tuple[int, list[str]]:
    rows = db.query("SELECT app_count, app_errors FROM stores WHERE name = ?", (name,))
    return int(rows[0][0]), [str(e) for e in json.loads(rows[0][1] or "[]")]
