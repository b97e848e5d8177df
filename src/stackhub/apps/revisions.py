"""The revision history of an instance's settings: each applied change (settings, update,
rollback) keeps the definition and values it ended with, so any one can be applied again.

Revision 1 is what the instance had before its first change (written then, lazily: instances
installed earlier have no row until they change). Rows go with the instance (`ON DELETE
CASCADE`).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from pydantic import BaseModel, Field

from stackhub.errors import NotFound
from stackhub.state.db import Database, now
from stackhub.state.instances import InstanceRecord


class RevisionRead(BaseModel):
    """One kept revision of an instance (secret values are never shown)."""

    number: int
    reason: str = Field(description="install, settings, update, rollback or revert")
    version: str
    parameters: dict[str, str] = Field(description="Values; secrets as ********")
    snapshot: str | None = Field(default=None, description="The pre-update snapshot id, for "
                                 "revisions an update made")
    created_at: str
    current: bool = False


class Revision(BaseModel):
    """A revision with everything needed to apply it again."""

    number: int
    reason: str
    version: str
    parameters: dict[str, str]
    definition: dict[str, Any]
    snapshot: str | None = None
    created_at: str


def _row(row: sqlite3.Row) -> Revision:
    return Revision(number=row["number"], reason=row["reason"], version=row["version"],
                    parameters=json.loads(row["parameters"]),
                    definition=json.loads(row["definition"]), snapshot=row["snapshot"],
                    created_at=row["created_at"])


class Revisions:
    """Table `instance_revisions`."""

    def __init__(self, db: Database) -> None:
        """Use `db`."""
        self.db = db

    def all(self, instance: str) -> list[Revision]:
        """Every revision of an instance, oldest first."""
        return [_row(r) for r in self.db.query(
            "SELECT * FROM instance_revisions WHERE instance = ? ORDER BY number", (instance,))]

    def get(self, instance: str, number: int) -> Revision:
        """One revision, or NotFound."""
        rows = self.db.query("SELECT * FROM instance_revisions WHERE instance = ? AND "
                             "number = ?", (instance, number))
        if not rows:
            raise NotFound(f"instance {instance!r} has no revision {number}; see `stackhub app "
                           f"revisions {instance}`")
        return _row(rows[0])

    def latest(self, instance: str) -> Revision | None:
        """The newest revision, if any."""
        rows = self.db.query("SELECT * FROM instance_revisions WHERE instance = ? ORDER BY "
                             "number DESC LIMIT 1", (instance,))
        return _row(rows[0]) if rows else None

    def ensure_first(self, record: InstanceRecord) -> None:
        """Write revision 1 from the record as it is, if the instance has no revision yet."""
        if self.latest(record.name) is None:
            self.add(record, reason="install")

    def add(self, record: InstanceRecord, *, reason: str, snapshot: str | None = None) -> int:
        """Append the record's definition and values as the next revision; return its number."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT COALESCE(MAX(number), 0) FROM instance_revisions WHERE "
                               "instance = ?", (record.name,)).fetchone()
            number = int(row[0]) + 1
            conn.execute(
                "INSERT INTO instance_revisions (instance, number, reason, version, parameters,"
                " definition, snapshot, created_at) VALUES (?,?,?,?,?,?,?,?)",
                (record.name, number, reason, record.version, json.dumps(record.parameters),
                 json.dumps(record.definition), snapshot, now()))
        return number

    def digest_update(self, instance: str) -> bool:
        """Tell whether the last update check found new digests behind the instance's tags."""
        return bool(self.db.query("SELECT 1 FROM instance_updates WHERE instance = ? AND "
                                  "kind = 'digest'", (instance,)))
