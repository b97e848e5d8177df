"""Store server-side sessions: random cookie values kept only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from stackhub.state.db import Database, now

SESSION_PREFIX = "shs_"
IDLE = timedelta(hours=24)
ABSOLUTE = timedelta(days=14)
PENDING = timedelta(minutes=5)
TOUCH_EVERY = timedelta(seconds=60)
MAX_CODE_FAILURES = 5


def digest(secret: str) -> str:
    """Hash a high-entropy secret (session value or API token) for storage and lookup."""
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_time(text: str) -> datetime:
    """Read a timestamp written by `now()`."""
    return datetime.fromisoformat(text)


def stamp(moment: datetime) -> str:
    """Write a timestamp the way `now()` does."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class SessionRecord:
    """One row of the sessions table."""

    id: str
    username: str
    pending: bool
    csrf: str
    failures: int
    ip: str
    user_agent: str
    created_at: str
    last_seen: str
    expires_at: str

    def alive(self, moment: datetime) -> bool:
        """Say whether the session is within its idle and absolute lifetimes."""
        if moment >= parse_time(self.expires_at):
            return False
        idle = PENDING if self.pending else IDLE
        return moment - parse_time(self.last_seen) < idle


def _session(row: sqlite3.Row) -> SessionRecord:
    return SessionRecord(id=row["id"], username=row["username"], pending=bool(row["pending"]),
                         csrf=row["csrf"], failures=row["failures"], ip=row["ip"],
                         user_agent=row["user_agent"], created_at=row["created_at"],
                         last_seen=row["last_seen"], expires_at=row["expires_at"])


class Sessions:
    """Sessions in SQLite; the cookie value itself is never stored."""

    def __init__(self, db: Database) -> None:
        """Use the server's database."""
        self.db = db

    def create(self, username: str, *, pending: bool, ip: str,
               user_agent: str) -> tuple[str, SessionRecord]:
        """Start a session; return the cookie value (shown once) and the record."""
        secret = SESSION_PREFIX + secrets.token_urlsafe(32)
        moment = datetime.now(UTC)
        expires = moment + (PENDING if pending else ABSOLUTE)
        record = SessionRecord(id=secrets.token_hex(8), username=username, pending=pending,
                               csrf=secrets.token_urlsafe(32), failures=0, ip=ip[:64],
                               user_agent=user_agent[:256], created_at=stamp(moment),
                               last_seen=stamp(moment), expires_at=stamp(expires))
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO sessions (digest, id, username, pending, csrf, ip, "
                         "user_agent, created_at, last_seen, expires_at) VALUES "
                         "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (digest(secret), record.id, username, int(pending), record.csrf,
                          record.ip, record.user_agent, record.created_at, record.last_seen,
                          record.expires_at))
        return secret, record

    def lookup(self, secret: str) -> SessionRecord | None:
        """Return the live session for a cookie value, touching it; expired ones are deleted."""
        if not secret.startswith(SESSION_PREFIX) or len(secret) > 128:
            return None
        rows = self.db.query("SELECT * FROM sessions WHERE digest = ?", (digest(secret),))
        if not rows:
            return None
        record = _session(rows[0])
        moment = datetime.now(UTC)
        if not record.alive(moment):
            self.revoke(record.id)
            return None
        if moment - parse_time(record.last_seen) > TOUCH_EVERY:
            with self.db.transaction() as conn:
                conn.execute("UPDATE sessions SET last_seen = ? WHERE id = ?",
                             (stamp(moment), record.id))
        return record

    def of_user(self, username: str) -> list[SessionRecord]:
        """Return a user's full (not pending) sessions, newest first."""
        rows = self.db.query("SELECT * FROM sessions WHERE username = ? AND pending = 0 "
                             "ORDER BY created_at DESC", (username,))
        moment = datetime.now(UTC)
        return [s for s in map(_session, rows) if s.alive(moment)]

    def code_failed(self, session_id: str) -> int:
        """Count a wrong code on a pending session; return its failures so far."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE sessions SET failures = failures + 1 WHERE id = ?",
                         (session_id,))
            row = conn.execute("SELECT failures FROM sessions WHERE id = ?",
                               (session_id,)).fetchone()
        return int(row[0]) if row else MAX_CODE_FAILURES

    def revoke(self, session_id: str) -> None:
        """End one session."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    def revoke_user(self, username: str, *, keep: str | None = None) -> list[str]:
        """End a user's sessions (except `keep`); return the ended ids."""
        with self.db.transaction() as conn:
            rows = conn.execute("SELECT id FROM sessions WHERE username = ? AND id != ?",
                                (username, keep or "")).fetchall()
            conn.execute("DELETE FROM sessions WHERE username = ? AND id != ?",
                         (username, keep or ""))
        return [r["id"] for r in rows]

    def purge_expired(self) -> int:
        """Delete sessions past their absolute expiry; return how many."""
        with self.db.transaction() as conn:
            cur = conn.execute("DELETE FROM sessions WHERE expires_at < ?", (now(),))
        return cur.rowcount
