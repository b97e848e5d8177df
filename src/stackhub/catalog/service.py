"""The catalog: configured stores, their syncs, and the indexed apps they hold."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stackhub.adapters.fetch import Fetcher, HttpFetcher, check_url
from stackhub.adapters.git import Git, GitCli, check_branch
from stackhub.catalog import index
from stackhub.catalog.listing import Listing
from stackhub.catalog.models import (
    APP_ID,
    AppDefinition,
    CatalogAppRead,
    CatalogAppSummary,
    CategoryRead,
    StoreKind,
    StoreRead,
    SyncResult,
    localized,
)
from stackhub.catalog.readers import common
from stackhub.catalog.readers.compose import parse_compose
from stackhub.catalog.readers.stackhub import parse_app
from stackhub.catalog.snapshot import IMAGE_SUFFIXES, MAX_BYTES, safe_file
from stackhub.catalog.sync import SYNC_TIMEOUT, SyncContext, git_url, load, sync_store
from stackhub.errors import AlreadyExists, Invalid, NotFound, StoreError, TooLarge
from stackhub.fsutil import remove_tree_inside
from stackhub.platform import host_arch
from stackhub.state.db import Database, now

STORE_NAME = APP_ID
MAX_ASSET = 5 * 1024 * 1024
OFFICIAL = "official"
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")


def official_store_path() -> Path:
    """Return the official store: $STACKHUB_OFFICIAL_STORE, the wheel's copy, or store/."""
    env = os.environ.get("STACKHUB_OFFICIAL_STORE")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    bundled = here.parents[1] / "_store"  # put there by setup.py when the wheel is built
    return bundled if bundled.is_dir() else here.parents[3] / "store"


def guess_kind(source: str) -> StoreKind:
    """Guess a store's kind from its source: a path, an archive URL or a git repository."""
    if source.startswith("/"):
        return StoreKind.LOCAL
    path = source.split("?", 1)[0].split("#", 1)[0].lower()
    if path.startswith(("https://", "http://")) and path.endswith(ARCHIVE_SUFFIXES):
        return StoreKind.ARCHIVE
    return StoreKind.GIT


def parse_ref(ref: str) -> tuple[str, str]:
    """Split ``store/app`` into its two checked names."""
    store, _, app_id = ref.partition("/")
    if not STORE_NAME.fullmatch(store) or not APP_ID.fullmatch(app_id):
        raise Invalid(f"{ref!r} is not a catalog name of the form store/app")
    return store, app_id


def _store_read(row: dict[str, object]) -> StoreRead:
    errors = json.loads(str(row.get("app_errors") or "[]"))
    limit = int(str(row.get("max_bytes") or MAX_BYTES))
    return StoreRead.model_validate({**row, "local": bool(row["trusted"]), "app_errors": errors,
                                     "max_size_mb": limit // (1024 * 1024)})


def _definition(row: dict[str, Any]) -> AppDefinition:
    """Decode an indexed definition; one written by an older StackHub asks for a sync."""
    try:
        return AppDefinition.model_validate_json(str(row["definition"]))
    except ValidationError as err:
        raise StoreError(f"the catalog entry {row['store']}/{row['app']} was indexed by another "
                         f"StackHub version: sync store {row['store']!r} again") from err


class Catalog:
    """Stores configured in the database, synced under the stores folder, and their apps."""

    def __init__(self, db: Database, stores_dir: Path, *, git: Git | None = None,
                 fetcher: Fetcher | None = None, arch: str | None = None,
                 timeout: float = SYNC_TIMEOUT) -> None:
        """Use `db` for the index and `stores_dir` for synced content; configure the official
        store."""
        self.db = db
        self.ctx = SyncContext(db=db, stores_dir=stores_dir, git=git or GitCli(),
                               fetcher=fetcher or HttpFetcher(), arch=arch or host_arch(),
                               timeout=timeout)
        self._locks: dict[str, threading.Lock] = {}
        self._cards = index.Cards()
        self._listing = Listing(db)
        for leftover in stores_dir.glob(".sync-*") if stores_dir.is_dir() else []:
            # staging of a sync cut short by a crash or shutdown
            shutil.rmtree(leftover, ignore_errors=True)
        self._guard = threading.Lock()
        official = official_store_path()
        if official.is_dir():
            with db.transaction() as conn:
                conn.execute("INSERT OR IGNORE INTO stores (name, kind, source, position, trusted,"
                             " created_at) VALUES (?, 'local', ?, 0, 1, ?)",
                             (OFFICIAL, str(official), now()))
                conn.execute("UPDATE stores SET source = ?, trusted = 1 WHERE name = ? AND "
                             "kind = 'local'", (str(official), OFFICIAL))

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    # stores

    def stores(self) -> list[StoreRead]:
        """List configured stores in precedence order."""
        rows = self.db.query("SELECT * FROM stores ORDER BY position, name")
        return [_store_read(dict(r)) for r in rows]

    def store(self, name: str) -> StoreRead:
        """Return one store."""
        rows = self.db.query("SELECT * FROM stores WHERE name = ?", (name,))
        if not rows:
            raise NotFound(f"no store named {name!r}")
        return _store_read(dict(rows[0]))

    def add(self, name: str, source: str, branch: str | None = None,
            kind: StoreKind | None = None, *, local: bool = False,
            max_bytes: int | None = None) -> StoreRead:
        """Add a store (not synced yet); remote sources must be public https URLs unless local."""
        if not STORE_NAME.fullmatch(name):
            raise Invalid("store names are lowercase letters, digits, '.', '_' or '-'")
        source = source.strip()
        kind = kind or guess_kind(source)
        branch = check_branch(branch)
        if branch and kind is not StoreKind.GIT:
            raise Invalid("only git stores have a branch")
        if kind is StoreKind.GIT:
            git_url(source, local=local)
        elif kind is StoreKind.ARCHIVE:
            check_url(source, local=local)
        else:
            if not local:
                raise Invalid("a directory store must be added as local (--local) by an admin",
                              details={"reason": "trust_required"})
            path = Path(source)
            if not path.is_absolute() or not path.is_dir():
                raise Invalid(f"{source} is not an existing absolute directory")
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM stores WHERE name = ?", (name,)).fetchone():
                raise AlreadyExists(f"a store named {name!r} already exists")
            position = conn.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM stores "
                                    "WHERE position < 100000").fetchone()[0]
            conn.execute("INSERT INTO stores (name, kind, source, branch, position, trusted, "
                         "max_bytes, created_at) VALUES (?,?,?,?,?,?,?,?)",
                         (name, kind.value, source, branch, position, int(local), max_bytes,
                          now()))
        return self.store(name)

    def add_local(self, name: str, path: Path) -> StoreRead:
        """Add a local directory store."""
        return self.add(name, str(path), kind=StoreKind.LOCAL, local=True)

    def remove(self, name: str) -> None:
        """Remove a store, its index rows and synced files; installed instances keep theirs."""
        if name == OFFICIAL:
            raise Invalid("the official store cannot be removed")
        load(self.db, name)
        with self._lock(name):
            with self.db.transaction() as conn:
                index.drop_store(conn, name)
                conn.execute("DELETE FROM stores WHERE name = ?", (name,))
            remove_tree_inside(self.ctx.stores_dir / name, self.ctx.stores_dir)
            (self.ctx.stores_dir / f".stat-{name}").unlink(missing_ok=True)  # sync.py's marker

    # sync

    def sync_store(self, name: str, *, force: bool = False) -> SyncResult:
        """Sync one store now (waiting for a sync already running); raise StoreError on
        failure."""
        with self._lock(name):
            return sync_store(self.ctx, name, force=force)

    def sync(self, name: str | None = None, *, force: bool = False) -> list[SyncResult]:
        """Sync one store (raising on failure) or every store (failures reported per store)."""
        if name is not None:
            return [self.sync_store(name, force=force)]
        results: list[SyncResult] = []
        for store in self.stores():
            started = time.monotonic()
            try:
                results.append(self.sync_store(store.name, force=force))
            except StoreError as err:
                results.append(SyncResult(store=store.name, changed=False, error=err.message,
                                          revision=store.revision, app_count=store.app_count,
                                          seconds=time.monotonic() - started))
        return results

    def due(self, interval: float) -> list[str]:
        """Return stores whose last sync attempt is older than `interval` seconds (or never)."""
        due: list[str] = []
        for store in self.stores():
            if store.last_attempt is None:
                due.append(store.name)
                continue
            age = time.time() - datetime.fromisoformat(store.last_attempt).timestamp()
            if age >= interval:
                due.append(store.name)
        return due

    # apps (`list` comes last: inside the class its name hides the builtin)

    def _row(self, store: str, app_id: str) -> dict[str, Any]:
        rows = self.db.query("SELECT a.*, s.revision AS store_revision, s.index_key, s.snapshot "
                             "FROM catalog_apps a JOIN stores s ON s.name = a.store "
                             "WHERE a.store = ? AND a.app = ?", (store, app_id))
        if not rows:
            load(self.db, store)
            raise NotFound(f"store {store!r} has no app {app_id!r}")
        return dict(rows[0])

    def get(self, ref: str) -> AppDefinition:
        """Return the indexed app named ``store/app``."""
        store, app_id = parse_ref(ref)
        return _definition(self._row(store, app_id))

    @staticmethod
    def read_files(manifest: str | bytes, compose: str | bytes) -> AppDefinition:
        """Read an app handed over as StackHub-format files rather than from a store."""
        return parse_app(manifest, compose)

    @staticmethod
    def read_compose(text: str | bytes, *, name_hint: str | None = None) -> AppDefinition:
        """Read an app handed over as a plain compose file rather than from a store."""
        return parse_compose(text, name_hint=name_hint)

    def search(self, text: str, locale: str = "en") -> list[CatalogAppSummary]:
        """Search titles, taglines and descriptions in every language."""
        return self.list(query=text, locale=locale)

    def categories(self, store: str | None = None) -> list[CategoryRead]:
        """List categories with app counts."""
        return index.categories(self.db, store)

    def details(self, ref: str, locale: str = "en") -> CatalogAppRead:
        """Return one app in full: localized text and every language present."""
        store, app_id = parse_ref(ref)
        row = self._row(store, app_id)
        app = _definition(row)
        base = index.summary(row, locale)
        shots = json.loads(str(row["screenshots"]))
        urls = [s if s.startswith("https://") else
                f"/api/catalog/apps/{store}/{app_id}/screenshots/{n}" for n, s in enumerate(shots)]
        locales = sorted({*app.title, *app.tagline, *app.description})
        return CatalogAppRead(
            **base.model_dump(), description=localized(app.description, locale),
            title_i18n=app.title, tagline_i18n=app.tagline, description_i18n=app.description,
            locales=locales, website=app.website, author=app.author,
            architectures=app.architectures, main=app.main, parameters=app.parameters,
            screenshot_urls=urls, notes=app.notes, compose=app.compose)

    def asset(self, store: str, app_id: str, screenshot: int | None = None) -> tuple[bytes, str]:
        """Return the bytes and suffix of an app's icon (or n-th screenshot) from its store."""
        row = self._row(store, app_id)
        if screenshot is None:
            ref = row["icon"]
        else:
            shots = json.loads(str(row["screenshots"]))
            ref = shots[screenshot] if 0 <= screenshot < len(shots) else None
        what = "icon" if screenshot is None else f"screenshot {screenshot}"
        if not isinstance(ref, str) or ref.startswith("https://") or not row["snapshot"]:
            raise NotFound(f"{store}/{app_id} has no {what} in its store")
        path = safe_file(self.ctx.stores_dir / store / str(row["snapshot"]), ref)
        if path is None or path.suffix.lower() not in IMAGE_SUFFIXES:
            raise NotFound(f"{store}/{app_id} has no readable {what}")
        try:
            data = common.read_file(path.parent, path.name, limit=MAX_ASSET)
        except TooLarge as err:
            raise NotFound(f"the {what} of {store}/{app_id} is too large to serve") from err
        except Invalid as err:
            raise NotFound(f"{store}/{app_id} has no readable {what}") from err
        return data, path.suffix.lower()

    def list(self, store: str | None = None, category: str | None = None,
             installable: bool | None = None, query: str | None = None,
             locale: str = "en", featured: bool | None = None, recent: bool = False,
             limit: int = 1000) -> list[CatalogAppSummary]:
        """List catalog apps, filtered, in store precedence order (best match when querying).

        `recent` keeps apps with a known change date, newest first.
        """
        filters: dict[str, Any] = dict(store=store, category=category, installable=installable,
                                       text=query, featured=featured, recent=recent,
                                       limit=limit)
        keys = index.query_apps(self.db, columns=index.KEY_COLUMNS, **filters)
        found = self._listing.entries(keys, locale)
        if found is not None:
            return found
        # a store was re-indexed between the two reads: build this answer from full rows
        rows = index.query_apps(self.db, **filters)
        return [index.summary(r, locale, self._cards) for r in rows]
