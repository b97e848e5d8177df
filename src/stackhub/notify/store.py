"""Tables `notifications` and `notification_reads`: one open notification per key, read marks
per user, the oldest resolved ones pruned beyond KEEP."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stackhub.errors import NotFound
from stackhub.notify.models import Kind, NotificationRead, Severity
from stackhub.notify.texts import render
from stackhub.state.db import Database, now

KEEP = 500  # notifications kept; beyond it the oldest resolved ones go


@dataclass
class Notice:
    """A condition to raise: the key dedupes (one open notification per key)."""

    kind: Kind
    key: str
    params: dict[str, Any]
    link: str
    severity: Severity = Severity.WARNING
    instance: str | None = None
    admin_only: bool = True
    renotify: bool = False  # changed params make it unread and delivered again (new version)


@dataclass
class Stored:
    """A stored notification, before the read mark of a reader is known."""

    id: int
    kind: Kind
    key: str
    severity: Severity
    params: dict[str, Any]
    link: str
    instance: str | None
    admin_only: bool
    created_at: str
    updated_at: str
    resolved_at: str | None

    def read_model(self, read: bool) -> NotificationRead:
        """Return the API view for a reader."""
        return NotificationRead(id=self.id, kind=self.kind, severity=self.severity,
                                params=self.params, text=render(self.kind, self.params),
                                link=self.link, instance=self.instance, read=read,
                                resolved=self.resolved_at is not None,
                                created_at=self.created_at, updated_at=self.updated_at,
                                resolved_at=self.resolved_at)


def _stored(row: sqlite3.Row) -> Stored:
    return Stored(id=int(row["id"]), kind=Kind(row["kind"]), key=row["key"],
                  severity=Severity(row["severity"]), params=json.loads(row["params"]),
                  link=row["link"], instance=row["instance"], admin_only=bool(row["admin_only"]),
                  created_at=row["created_at"], updated_at=row["updated_at"],
                  resolved_at=row["resolved_at"])


class NotificationStore:
    """The notifications' rows."""

    def __init__(self, db: Database, *, keep: int = KEEP) -> None:
        """Use the server's database."""
        self.db = db
        self.keep = keep

    def put(self, notice: Notice) -> tuple[Stored, bool]:
        """Raise a notice; return the notification and whether it is new (or re-raised).

        An open notification with the same key is kept: unchanged when its params are the
        same; else its params are updated (hours, percent), and with `renotify` (a newer
        version found) it is unread again for everyone and counts as re-raised.
        """
        params = json.dumps(notice.params, sort_keys=True)
        stamp = now()
        with self.db.transaction() as conn:
            row = conn.execute("SELECT * FROM notifications WHERE key = ? AND resolved_at IS "
                               "NULL ORDER BY id DESC LIMIT 1", (notice.key,)).fetchone()
            if row is not None and row["params"] == params:
                return _stored(row), False
            if row is not None:
                conn.execute("UPDATE notifications SET params = ?, severity = ?, link = ?, "
                             "updated_at = ? WHERE id = ?",
                             (params, notice.severity.value, notice.link, stamp, row["id"]))
                if notice.renotify:
                    conn.execute("DELETE FROM notification_reads WHERE notification = ?",
                                 (row["id"],))
                ident = int(row["id"])
            else:
                ident = int(conn.execute(
                    "INSERT INTO notifications (kind, key, severity, params, link, instance, "
                    "admin_only, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
                    (notice.kind.value, notice.key, notice.severity.value, params, notice.link,
                     notice.instance, int(notice.admin_only), stamp, stamp)).lastrowid or 0)
                conn.execute("DELETE FROM notifications WHERE resolved_at IS NOT NULL AND id IN "
                             "(SELECT id FROM notifications ORDER BY id DESC LIMIT -1 OFFSET ?)",
                             (self.keep,))
            found = conn.execute("SELECT * FROM notifications WHERE id = ?", (ident,)).fetchone()
        return _stored(found), row is None or notice.renotify

    def resolve(self, key: str) -> Stored | None:
        """Mark the open notification of a key resolved; return it (None if none was open)."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT * FROM notifications WHERE key = ? AND resolved_at IS "
                               "NULL", (key,)).fetchone()
            if row is None:
                return None
            stamp = now()
            conn.execute("UPDATE notifications SET resolved_at = ?, updated_at = ? WHERE key = ? "
                         "AND resolved_at IS NULL", (stamp, stamp, key))
            found = conn.execute("SELECT * FROM notifications WHERE id = ?",
                                 (row["id"],)).fetchone()
        return _stored(found)

    def open_keys(self, prefix: str) -> set[str]:
        """Return the keys with an open notification that start with `prefix`."""
        rows = self.db.query("SELECT key FROM notifications WHERE resolved_at IS NULL AND "
                             "substr(key, 1, ?) = ?", (len(prefix), prefix))
        return {r["key"] for r in rows}

    def get(self, ident: int) -> Stored:
        """Return one notification (NotFound if there is none)."""
        rows = self.db.query("SELECT * FROM notifications WHERE id = ?", (ident,))
        if not rows:
            raise NotFound(f"no notification {ident}")
        return _stored(rows[0])

    def visible(self, user: str, may_see: Callable[[Stored], bool]) -> list[tuple[Stored, bool]]:
        """Return every notification `may_see` lets the user read, newest first, with the
        user's read mark."""
        rows = self.db.query(
            "SELECT n.*, r.read_at AS read_at FROM notifications n LEFT JOIN notification_reads"
            " r ON r.notification = n.id AND r.user = ? ORDER BY n.id DESC", (user,))
        found = [(_stored(r), r["read_at"] is not None) for r in rows]
        return [(s, read) for s, read in found if may_see(s)]

    def mark_read(self, user: str, ids: list[int]) -> int:
        """Mark notifications read for a user; return how many were unread."""
        if not ids:
            return 0
        stamp = now()
        with self.db.transaction() as conn:
            return sum(conn.execute("INSERT OR IGNORE INTO notification_reads (notification, "
                                    "user, read_at) VALUES (?,?,?)",
                                    (i, user, stamp)).rowcount for i in ids)
