"""Store user accounts, their TOTP state, recovery codes and instance grants."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from stackhub.auth.models import Role, UserBrief, UserRead
from stackhub.errors import AlreadyExists, Conflict, Forbidden, NotFound
from stackhub.state.db import Database, now


@dataclass(frozen=True)
class UserRecord:
    """One row of the users table."""

    name: str
    role: str
    password_hash: str
    disabled: bool
    totp_secret: str | None
    totp_pending: str | None
    totp_last_step: int
    created_at: str
    updated_at: str

    @property
    def totp_enabled(self) -> bool:
        """Say whether two-factor authentication is on."""
        return self.totp_secret is not None

    def brief(self) -> UserBrief:
        """Return the short view."""
        return UserBrief(name=self.name, role=Role(self.role), totp_enabled=self.totp_enabled)


def _user(row: sqlite3.Row) -> UserRecord:
    return UserRecord(name=row["name"], role=row["role"], password_hash=row["password_hash"],
                      disabled=bool(row["disabled"]), totp_secret=row["totp_secret"],
                      totp_pending=row["totp_pending"], totp_last_step=row["totp_last_step"],
                      created_at=row["created_at"], updated_at=row["updated_at"])


def _enabled_admins(conn: sqlite3.Connection, *, besides: str) -> int:
    row = conn.execute("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0 "
                       "AND name != ?", (besides,)).fetchone()
    return int(row[0])


class Users:
    """User accounts in SQLite."""

    def __init__(self, db: Database) -> None:
        """Use the server's database."""
        self.db = db

    def find(self, name: str) -> UserRecord | None:
        """Return a user, or None."""
        rows = self.db.query("SELECT * FROM users WHERE name = ?", (name,))
        return _user(rows[0]) if rows else None

    def get(self, name: str) -> UserRecord:
        """Return a user, or raise NotFound."""
        user = self.find(name)
        if user is None:
            raise NotFound(f"no user named {name!r}")
        return user

    def all(self) -> list[UserRecord]:
        """Return every user by name."""
        return [_user(r) for r in self.db.query("SELECT * FROM users ORDER BY name")]

    def admin_exists(self) -> bool:
        """Say whether any admin account exists (setup is done)."""
        return bool(self.db.query("SELECT 1 FROM users WHERE role = 'admin' LIMIT 1"))

    def read(self, user: UserRecord) -> UserRead:
        """Return the admin view of a user, with grants."""
        return UserRead(name=user.name, role=Role(user.role), totp_enabled=user.totp_enabled,
                        disabled=user.disabled, instances=self.grants(user.name),
                        created_at=user.created_at, updated_at=user.updated_at)

    def create(self, name: str, role: Role, password_hash: str, *,
               first_admin: bool = False) -> UserRecord:
        """Add a user; with `first_admin`, only while no admin exists (setup)."""
        stamp = now()
        with self.db.transaction() as conn:
            if first_admin and conn.execute(
                    "SELECT 1 FROM users WHERE role = 'admin' LIMIT 1").fetchone():
                raise Forbidden("setup is already complete: an admin exists")
            if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise AlreadyExists(f"a user named {name!r} already exists")
            conn.execute("INSERT INTO users (name, role, password_hash, created_at, updated_at) "
                         "VALUES (?, ?, ?, ?, ?)", (name, str(role), password_hash, stamp, stamp))
        return self.get(name)

    def update(self, name: str, *, disabled: bool | None = None,
               role: Role | None = None) -> UserRecord:
        """Enable/disable a user or change its role, never leaving no enabled admin."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"no user named {name!r}")
            user = _user(row)
            new_role = str(role) if role is not None else user.role
            new_disabled = disabled if disabled is not None else user.disabled
            stays_admin = new_role == Role.ADMIN and not new_disabled
            if user.role == Role.ADMIN and not user.disabled and not stays_admin and \
                    _enabled_admins(conn, besides=name) == 0:
                raise Conflict("this is the last enabled admin; make another admin first")
            conn.execute("UPDATE users SET role = ?, disabled = ?, updated_at = ? WHERE name = ?",
                         (new_role, int(new_disabled), now(), name))
        return self.get(name)

    def delete(self, name: str) -> None:
        """Delete a user with its sessions, tokens and grants, never the last admin."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"no user named {name!r}")
            user = _user(row)
            if user.role == Role.ADMIN and not user.disabled and \
                    _enabled_admins(conn, besides=name) == 0:
                raise Conflict("this is the last enabled admin; make another admin first")
            conn.execute("DELETE FROM users WHERE name = ?", (name,))

    def set_password(self, name: str, password_hash: str) -> None:
        """Replace a user's password hash."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE users SET password_hash = ?, updated_at = ? WHERE name = ?",
                         (password_hash, now(), name))

    def set_totp_pending(self, name: str, secret: str | None) -> None:
        """Keep (or drop) a TOTP secret awaiting its first code."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE users SET totp_pending = ? WHERE name = ?", (secret, name))

    def enable_totp(self, name: str, secret: str, step: int, recovery: list[str]) -> None:
        """Turn TOTP on with its secret, the used step and recovery code digests."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE users SET totp_secret = ?, totp_pending = NULL, "
                         "totp_last_step = ?, updated_at = ? WHERE name = ?",
                         (secret, step, now(), name))
            conn.execute("DELETE FROM recovery_codes WHERE username = ?", (name,))
            conn.executemany("INSERT OR IGNORE INTO recovery_codes (username, digest) "
                             "VALUES (?, ?)", [(name, d) for d in recovery])

    def disable_totp(self, name: str) -> None:
        """Turn TOTP off and drop the recovery codes."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE users SET totp_secret = NULL, totp_pending = NULL, "
                         "totp_last_step = 0, updated_at = ? WHERE name = ?", (now(), name))
            conn.execute("DELETE FROM recovery_codes WHERE username = ?", (name,))

    def use_step(self, name: str, step: int) -> bool:
        """Mark a TOTP step used; False if it (or a later one) was used already."""
        with self.db.transaction() as conn:
            cur = conn.execute("UPDATE users SET totp_last_step = ? WHERE name = ? AND "
                               "totp_last_step < ?", (step, name, step))
            return cur.rowcount == 1

    def use_recovery(self, name: str, digest: str) -> bool:
        """Spend a recovery code; False if unknown or used."""
        with self.db.transaction() as conn:
            cur = conn.execute("UPDATE recovery_codes SET used_at = ? WHERE username = ? AND "
                               "digest = ? AND used_at IS NULL", (now(), name, digest))
            return cur.rowcount == 1

    def recovery_left(self, name: str) -> int:
        """Count unused recovery codes."""
        rows = self.db.query("SELECT COUNT(*) FROM recovery_codes WHERE username = ? AND "
                             "used_at IS NULL", (name,))
        return int(rows[0][0])

    def grants(self, name: str) -> list[str]:
        """Return the instances a user is granted."""
        rows = self.db.query("SELECT instance FROM grants WHERE username = ? ORDER BY instance",
                             (name,))
        return [r["instance"] for r in rows]

    def set_grants(self, name: str, instances: list[str]) -> None:
        """Replace a user's grants."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM grants WHERE username = ?", (name,))
            conn.executemany("INSERT OR IGNORE INTO grants (username, instance) VALUES (?, ?)",
                             [(name, i) for i in instances])

    def forget_instance(self, instance: str) -> None:
        """Drop every grant on an instance (it is being removed)."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM grants WHERE instance = ?", (instance,))
