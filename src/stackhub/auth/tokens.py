"""Store named API tokens per user: shown once, kept as SHA-256 digests, revocable."""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from stackhub.auth.models import TokenRead
from stackhub.auth.sessions import TOUCH_EVERY, digest, parse_time, stamp
from stackhub.errors import Conflict, NotFound
from stackhub.state.db import Database

TOKEN_PREFIX = "sht_"  # noqa: S105 - a prefix, not a secret
MAX_PER_USER = 100


@dataclass(frozen=True)
class TokenRecord:
    """One row of the api_tokens table."""

    id: str
    username: str
    name: str
    created_at: str
    last_used: str | None
    expires_at: str | None

    def read(self, *, current: str | None = None) -> TokenRead:
        """Return the API view (no secret)."""
        return TokenRead(id=self.id, name=self.name, created_at=self.created_at,
                         last_used=self.last_used, expires_at=self.expires_at,
                         current=self.id == current)


def _token(row: sqlite3.Row) -> TokenRecord:
    return TokenRecord(id=row["id"], username=row["username"], name=row["name"],
                       created_at=row["created_at"], last_used=row["last_used"],
                       expires_at=row["expires_at"])


class Tokens:
    """API tokens in SQLite."""

    def __init__(self, db: Database) -> None:
        """Use the server's database."""
        self.db = db

    def create(self, username: str, name: str, *,
               expires_days: int | None) -> tuple[str, TokenRecord]:
        """Make a token; return its secret (shown once) and record."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        moment = datetime.now(UTC)
        expires = stamp(moment + timedelta(days=expires_days)) if expires_days else None
        record = TokenRecord(id=secrets.token_hex(8), username=username, name=name,
                             created_at=stamp(moment), last_used=None, expires_at=expires)
        with self.db.transaction() as conn:
            count = conn.execute("SELECT COUNT(*) FROM api_tokens WHERE username = ?",
                                 (username,)).fetchone()[0]
            if count >= MAX_PER_USER:
                raise Conflict(f"a user may hold at most {MAX_PER_USER} tokens; revoke some")
            conn.execute("INSERT INTO api_tokens (id, username, name, digest, created_at, "
                         "expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                         (record.id, username, name, digest(secret), record.created_at,
                          expires))
        return secret, record

    def lookup(self, secret: str) -> TokenRecord | None:
        """Return the live token for a secret, touching it; expired ones are deleted."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 128:
            return None
        rows = self.db.query("SELECT * FROM api_tokens WHERE digest = ?", (digest(secret),))
        if not rows:
            return None
        record = _token(rows[0])
        moment = datetime.now(UTC)
        if record.expires_at and moment >= parse_time(record.expires_at):
            self.revoke(record.username, record.id)
            return None
        if record.last_used is None or moment - parse_time(record.last_used) > TOUCH_EVERY:
            with self.db.transaction() as conn:
                conn.execute("UPDATE api_tokens SET last_used = ? WHERE id = ?",
                             (stamp(moment), record.id))
        return record

    def of_user(self, username: str) -> list[TokenRecord]:
        """Return a user's tokens, newest first."""
        rows = self.db.query("SELECT * FROM api_tokens WHERE username = ? "
                             "ORDER BY created_at DESC", (username,))
        return [_token(r) for r in rows]

    def revoke_user(self, username: str) -> list[str]:
        """Delete every token of a user; return their ids."""
        with self.db.transaction() as conn:
            ids = [str(r["id"]) for r in conn.execute(
                "SELECT id FROM api_tokens WHERE username = ?", (username,))]
            conn.execute("DELETE FROM api_tokens WHERE username = ?", (username,))
        return ids

    def revoke(self, username: str, token_id: str) -> TokenRecord:
        """Delete one of the user's tokens, or raise NotFound."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT * FROM api_tokens WHERE id = ? AND username = ?",
                               (token_id, username)).fetchone()
            if row is None:
                raise NotFound(f"no token {token_id!r}")
            conn.execute("DELETE FROM api_tokens WHERE id = ?", (token_id,))
        return _token(row)
