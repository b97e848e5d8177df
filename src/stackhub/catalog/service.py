"""Find apps in configured stores (local directories in StackHub's format, for now)."""

from __future__ import annotations

import os
from pathlib import Path

from stackhub.catalog.manifest import COMPOSE_FILE, MANIFEST_FILE
from stackhub.catalog.models import APP_ID, AppDefinition
from stackhub.catalog.readers.stackhub import parse_app
from stackhub.errors import AlreadyExists, Invalid, NotFound
from stackhub.state.db import Database, now

STORE_NAME = APP_ID
MAX_FILE = 512 * 1024


def official_store_path() -> Path:
    """Return the official store folder shipped with StackHub (overridable by env)."""
    env = os.environ.get("STACKHUB_OFFICIAL_STORE")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "store"


def _read_limited(path: Path) -> bytes:
    if path.is_symlink() or not path.is_file():
        raise Invalid(f"{path.name} is missing or not a regular file")
    if path.stat().st_size > MAX_FILE:
        raise Invalid(f"{path.name} is larger than {MAX_FILE} bytes")
    return path.read_bytes()


def read_app_dir(folder: Path, *, store: str | None) -> AppDefinition:
    """Read one app folder in StackHub's own format."""
    return parse_app(_read_limited(folder / MANIFEST_FILE), _read_limited(folder / COMPOSE_FILE),
                     store=store)


class Catalog:
    """The catalog: stores configured in the database and the apps they hold."""

    def __init__(self, db: Database) -> None:
        """Use `db` for store records; make sure the official store is configured."""
        self.db = db
        official = official_store_path()
        if official.is_dir() and not db.query("SELECT 1 FROM stores WHERE name='official'"):
            with db.transaction() as conn:
                conn.execute("INSERT OR IGNORE INTO stores (name, kind, source, position, "
                             "created_at) VALUES ('official', 'local', ?, 0, ?)",
                             (str(official), now()))

    def stores(self) -> list[dict[str, object]]:
        """List configured stores."""
        rows = self.db.query("SELECT name, kind, source, branch, position FROM stores "
                             "ORDER BY position, name")
        return [dict(r) for r in rows]

    def add_local(self, name: str, path: Path) -> None:
        """Add a local directory store."""
        if not STORE_NAME.match(name):
            raise Invalid("store names are lowercase letters, digits, '.', '_' or '-'")
        if not path.is_absolute() or not path.is_dir():
            raise Invalid(f"{path} is not an existing absolute directory")
        if self.db.query("SELECT 1 FROM stores WHERE name = ?", (name,)):
            raise AlreadyExists(f"a store named {name!r} already exists")
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO stores (name, kind, source, created_at) VALUES "
                         "(?, 'local', ?, ?)", (name, str(path), now()))

    def _store_root(self, store: str) -> Path:
        rows = self.db.query("SELECT source FROM stores WHERE name = ?", (store,))
        if not rows:
            raise NotFound(f"no store named {store!r}")
        root = Path(rows[0]["source"])
        return root / "apps" if (root / "apps").is_dir() else root

    def get(self, ref: str) -> AppDefinition:
        """Return the app named ``store/app``."""
        store, _, app_id = ref.partition("/")
        if not STORE_NAME.match(store) or not APP_ID.match(app_id):
            raise Invalid(f"{ref!r} is not a catalog name of the form store/app")
        folder = self._store_root(store) / app_id
        if not folder.is_dir() or folder.is_symlink():
            raise NotFound(f"store {store!r} has no app {app_id!r}")
        return read_app_dir(folder, store=store)

    def list(self, store: str | None = None) -> list[AppDefinition]:
        """Return every readable app of one or all stores."""
        names = [store] if store else [str(s["name"]) for s in self.stores()]
        apps: list[AppDefinition] = []
        for name in names:
            root = self._store_root(name)
            for folder in sorted(root.iterdir()) if root.is_dir() else []:
                if folder.is_dir() and APP_ID.match(folder.name):
                    try:
                        apps.append(read_app_dir(folder, store=name))
                    except Invalid:
                        continue
        return apps
