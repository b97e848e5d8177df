"""Which StackHub last ran on a database: refuse an older one, record upgrades.

`Database.migrate` calls `refuse_newer` before it changes anything and `record` after: a
database whose schema (``PRAGMA user_version``) or recorded StackHub version is newer than this
StackHub's stops the start with a message naming both versions and what to do.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stackhub import version as versions
from stackhub.errors import StackHubError

if TYPE_CHECKING:
    from stackhub.state.db import Database

TABLE = "stackhub_meta"


class NewerDatabase(StackHubError):
    """The database was last used by a newer StackHub: this one refuses to run on it."""

    code = "newer_database"


@dataclass(frozen=True)
class Recorded:
    """What the database says about the StackHub that last ran on it."""

    schema: int
    version: str | None
    previous: str | None
    upgraded_at: str | None


def read(conn: sqlite3.Connection) -> Recorded:
    """Read the schema number and the recorded versions (None where not recorded)."""
    schema = int(conn.execute("PRAGMA user_version").fetchone()[0])
    found = conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name=?",
                         (TABLE,)).fetchone()
    values: dict[str, str] = {}
    if found is not None:
        rows = conn.execute("SELECT key, value FROM stackhub_meta").fetchall()
        values = {str(r[0]): str(r[1]) for r in rows}
    return Recorded(schema=schema, version=values.get("version"),
                    previous=values.get("previous_version"),
                    upgraded_at=values.get("upgraded_at"))


def refuse_newer(conn: sqlite3.Connection, db: Path, *, schema: int,
                 running: str | None = None) -> None:
    """Raise NewerDatabase when `db` was last used by a StackHub newer than this one."""
    running = running or versions.installed()
    seen = read(conn)
    newer_schema = seen.schema > schema
    newer_version = seen.version is not None and versions.is_newer(seen.version, running)
    if not (newer_schema or newer_version):
        return
    last = seen.version or f"a newer release (schema {seen.schema})"
    raise NewerDatabase(
        f"the database {db} was last used by StackHub {last} (schema {seen.schema}); this is "
        f"StackHub {running} (schema {schema}), which cannot run on a newer database. Nothing "
        f"was changed. Install StackHub {seen.version or 'that release'} or later again "
        f"(sudo bash install.sh --wheel stackhub-{seen.version or 'X.Y.Z'}-py3-none-any.whl, "
        f"or pip install 'stackhub>={seen.version or 'X.Y.Z'}'), or restore a system backup "
        f"made with StackHub {running} into an empty data root.",
        details={"reason": "newer_database", "database_version": seen.version,
                 "database_schema": seen.schema, "version": running, "schema": schema})


def record(conn: sqlite3.Connection, *, at: str, before: int,
           running: str | None = None) -> None:
    """Record this StackHub's version; on a change keep the previous one and when it changed.

    `before` is the schema number before this start's migrations: a database an older
    StackHub (which recorded no version) made reads as ``schema N`` for the previous version.
    """
    running = running or versions.installed()
    seen = read(conn)
    if seen.version == running:
        return
    rows = {"version": running}
    previous = seen.version or (f"schema {before}" if before else None)
    if previous is not None:
        rows |= {"previous_version": previous, "upgraded_at": at}
    conn.executemany("INSERT INTO stackhub_meta(key, value) VALUES (?, ?) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value", list(rows.items()))


def check_file(db: Path) -> None:
    """Refuse (NewerDatabase) a database file a newer StackHub used; read-only, no migration."""
    from stackhub.state.migrations import MIGRATIONS

    if not db.exists():
        return
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        refuse_newer(conn, db, schema=len(MIGRATIONS))
    finally:
        conn.close()


def recorded(db: Database) -> Recorded:
    """Read what `db` records about the StackHub versions that ran on it."""
    schema = int(db.query("PRAGMA user_version")[0][0])
    values = {str(r[0]): str(r[1]) for r in db.query("SELECT key, value FROM stackhub_meta")}
    return Recorded(schema=schema, version=values.get("version"),
                    previous=values.get("previous_version"),
                    upgraded_at=values.get("upgraded_at"))
