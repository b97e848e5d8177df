"""Open the SQLite database in WAL mode and bring its schema up to date."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from stackhub.errors import StorageFull
from stackhub.state import versioning
from stackhub.state.migrations import MIGRATIONS


def now() -> str:
    """Return the current UTC time as ISO-8601 text."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Database:
    """A small wrapper around one SQLite file: connections, transactions, migrations."""

    def __init__(self, path: Path) -> None:
        """Open (creating if needed) the database at `path` and migrate it."""
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connect().execute("PRAGMA journal_mode=WAL")
        path.chmod(0o600)
        self.migrate()

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys=ON")
            # FULL: every commit (a journal step, an instance record) is on disk when it
            # returns, so a power cut loses nothing StackHub acted on (tests/integration/
            # test_power_loss.py); NORMAL kept WAL commits only in the page cache until a
            # checkpoint
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block in one immediate transaction (per thread connection)."""
        conn = self._connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as err:
            with contextlib.suppress(sqlite3.Error):  # a failed COMMIT may have rolled back
                conn.execute("ROLLBACK")
            if isinstance(err, sqlite3.OperationalError) and \
                    err.sqlite_errorcode == sqlite3.SQLITE_FULL:
                raise StorageFull(f"the disk holding StackHub's database ({self.path.parent}) "
                                  "is full: free some space and try again (nothing was "
                                  "changed)") from err
            raise

    def query(self, sql: str,
              params: tuple[object, ...] | dict[str, object] = ()) -> list[sqlite3.Row]:
        """Run a read query and return all rows."""
        return self._connect().execute(sql, params).fetchall()

    def version(self) -> tuple[int, int, int]:
        """Return a marker that changes whenever anything was committed to the database.

        (thread, `PRAGMA data_version`, `total_changes`) of this thread's connection: the
        pragma moves on commits by other connections, total_changes on this one's own. Only
        markers taken in the same thread compare (the read caches of apps/snapshot.py).
        """
        conn = self._connect()
        return (threading.get_ident(), int(conn.execute("PRAGMA data_version").fetchone()[0]),
                conn.total_changes)

    def migrate(self) -> int:
        """Apply pending migrations; return the schema version."""
        with self.transaction() as conn:
            # a database a newer StackHub used is refused before anything changes
            versioning.refuse_newer(conn, self.path, schema=len(MIGRATIONS))
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={number}")
            versioning.record(conn, at=now(), before=version)
            return len(MIGRATIONS)

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
