"""Read and write the proxy domain's tables: custom domains, gateway settings, DNS records."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from stackhub.proxy.models import DomainError, DomainErrorDetail, DomainFailure
from stackhub.state.db import Database, now


@dataclass
class DomainRecord:
    """A custom domain row."""

    name: str
    instance: str
    state: str
    error: str | None
    issuer: str | None
    expires_at: str | None
    checked_at: str | None
    created_at: str
    updated_at: str
    error_code: str | None = None
    """The error as a code (proxy/models.py DomainError); None before codes existed."""
    error_detail: str | None = None
    """The values the error is worded with (DomainErrorDetail as JSON), or None."""

    def failure(self) -> tuple[DomainError | None, DomainErrorDetail | None]:
        """Return the stored error's code and values; None for what this version cannot read."""
        if self.error is None or self.error_code is None:
            return None, None
        try:
            code = DomainError(self.error_code)
        except ValueError:  # written by a newer StackHub
            return None, None
        try:
            detail = DomainErrorDetail.model_validate_json(self.error_detail) \
                if self.error_detail else None
        except ValidationError:
            detail = None
        return code, detail


class DomainRecords:
    """The proxy domain's access to its tables."""

    def __init__(self, db: Database) -> None:
        """Use `db` for every read and write."""
        self.db = db

    def all(self, instance: str | None = None) -> list[DomainRecord]:
        """Return custom domains (of one instance), by name."""
        if instance is None:
            rows = self.db.query("SELECT * FROM domains ORDER BY name")
        else:
            rows = self.db.query("SELECT * FROM domains WHERE instance = ? ORDER BY name",
                                 (instance,))
        return [DomainRecord(**dict(r)) for r in rows]

    def find(self, name: str) -> DomainRecord | None:
        """Return one custom domain, or None."""
        rows = self.db.query("SELECT * FROM domains WHERE name = ?", (name,))
        return DomainRecord(**dict(rows[0])) if rows else None

    def put(self, name: str, instance: str, state: str) -> None:
        """Insert a domain, or set the state of an existing one (clearing its error)."""
        stamp = now()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO domains (name, instance, state, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET state = excluded.state,"
                " error = NULL, error_code = NULL, error_detail = NULL,"
                " updated_at = excluded.updated_at",
                (name, instance, state, stamp, stamp))

    def update(self, name: str, *, state: str, error: str | None = None,
               failure: DomainFailure | None = None, issuer: str | None = None,
               expires_at: str | None = None) -> None:
        """Record the outcome of a check: `failure` (its sentence, code and values), else
        `error` alone, else no error."""
        stamp = now()
        code = detail = None
        if failure is not None:
            error, code = failure.text, failure.code.value
            detail = failure.detail.model_dump_json(exclude_none=True) if failure.detail \
                else None
        with self.db.transaction() as conn:
            conn.execute("UPDATE domains SET state = ?, error = ?, error_code = ?, "
                         "error_detail = ?, issuer = COALESCE(?, issuer),"
                         " expires_at = COALESCE(?, expires_at), checked_at = ?, updated_at = ?"
                         " WHERE name = ?",
                         (state, error, code, detail, issuer, expires_at, stamp, stamp, name))

    def delete(self, name: str) -> bool:
        """Delete a domain; tell whether it existed."""
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM domains WHERE name = ?", (name,)).rowcount > 0

    def setting(self, key: str) -> str | None:
        """Return a gateway setting."""
        rows = self.db.query("SELECT value FROM gateway_settings WHERE key = ?", (key,))
        return str(rows[0]["value"]) if rows else None

    def set_setting(self, key: str, value: str | None) -> None:
        """Set (or with None, clear) a gateway setting."""
        with self.db.transaction() as conn:
            if value is None:
                conn.execute("DELETE FROM gateway_settings WHERE key = ?", (key,))
            else:
                conn.execute("INSERT INTO gateway_settings (key, value) VALUES (?, ?) "
                             "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                             (key, value))

    # -- DNS records written at the provider (proxy/publish.py) ---------------------------
    def dns_published(self) -> dict[tuple[str, str, str], tuple[str, bool]]:
        """Return {(zone, name, type): (content, written)} of the records StackHub wrote."""
        return {(str(r["zone"]), str(r["name"]), str(r["type"])):
                (str(r["content"]), bool(r["written"]))
                for r in self.db.query("SELECT * FROM dns_published")}

    def set_dns_published(self, zone: str, name: str, rtype: str, content: str, *,
                          written: bool) -> None:
        """Remember a record about to be written (written=False) or written at the provider."""
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO dns_published (zone, name, type, content, written, "
                         "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(zone, name, type) "
                         "DO UPDATE SET content = excluded.content, written = excluded.written,"
                         " updated_at = excluded.updated_at",
                         (zone, name, rtype, content, int(written), now()))

    def drop_dns_published(self, zone: str, name: str, rtype: str) -> None:
        """Forget a record deleted at the provider."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM dns_published WHERE zone = ? AND name = ? AND type = ?",
                         (zone, name, rtype))

    # -- protection (forward auth) ----------------------------------------------------------
    def protected(self) -> set[str]:
        """Return the instances behind StackHub's sign-in."""
        return {str(r["instance"]) for r in self.db.query(
            "SELECT instance FROM instance_protection")}

    def set_protected(self, instance: str, on: bool) -> None:
        """Put an instance behind the sign-in, or take it out (ending its gateway sessions)."""
        with self.db.transaction() as conn:
            if on:
                conn.execute("INSERT INTO instance_protection (instance, created_at) VALUES "
                             "(?, ?) ON CONFLICT(instance) DO NOTHING", (instance, now()))
            else:
                conn.execute("DELETE FROM instance_protection WHERE instance = ?", (instance,))

    def add_gateway_session(self, digest: str, *, session_id: str, username: str, host: str,
                            expires_at: str) -> None:
        """Keep a gateway session (the cookie's digest, never the cookie)."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM gateway_sessions WHERE expires_at < ?", (now(),))
            conn.execute("INSERT INTO gateway_sessions (digest, session_id, username, host, "
                         "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                         (digest, session_id, username, host, now(), expires_at))

    def gateway_session(self, digest: str) -> tuple[str, str, str, str] | None:
        """Return (session id, user, host, expiry) of a gateway session, or None."""
        rows = self.db.query("SELECT session_id, username, host, expires_at FROM "
                             "gateway_sessions WHERE digest = ?", (digest,))
        if not rows:
            return None
        row = rows[0]
        return (str(row["session_id"]), str(row["username"]), str(row["host"]),
                str(row["expires_at"]))

    def drop_gateway_session(self, digest: str) -> None:
        """Forget a gateway session."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM gateway_sessions WHERE digest = ?", (digest,))
