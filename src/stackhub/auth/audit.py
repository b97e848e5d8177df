"""Record security events (sign-ins, user and token changes, installs, consents) in SQLite."""

from __future__ import annotations

import json
import logging
from typing import Any

from stackhub.auth.models import AuditEntry
from stackhub.state.db import Database, now

log = logging.getLogger("stackhub.audit")
KEEP = 50_000
PRUNE_EVERY = 500
SECRET_KEYS = ("password", "token", "secret", "code", "current", "new")


def _clean(text: str, limit: int) -> str:
    """Keep printable characters only: a user name typed by an attacker must not forge lines."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


def _scrub(details: dict[str, Any]) -> dict[str, Any]:
    return {k: "[redacted]" if any(s in k.lower() for s in SECRET_KEYS) else v
            for k, v in details.items()}



MAX_DETAILS = 4096


def _bounded_json(data: dict[str, Any]) -> str:
    """Encode details as JSON of at most MAX_DETAILS characters, shortening long values.

    Cutting the encoded text would leave invalid JSON that `recent` could not read back.
    """
    text = json.dumps(data, default=str)
    if len(text) <= MAX_DETAILS:
        return text
    shortened = {key: (value if len(json.dumps(value, default=str)) <= 200
                       else str(value)[:200] + "…") for key, value in data.items()}
    text = json.dumps(shortened, default=str)
    if len(text) <= MAX_DETAILS:
        return text
    cut = MAX_DETAILS
    while len(out := json.dumps({"truncated": text[:cut]})) > MAX_DETAILS:
        cut -= len(out) - MAX_DETAILS  # escapes make the encoding longer than the text
    return out

class AuditLog:
    """An append-only log of security events, newest first on read."""

    def __init__(self, db: Database) -> None:
        """Use the server's database."""
        self.db = db
        self._count = 0

    def record(self, *, actor: str, action: str, target: str = "", ip: str = "",
               success: bool = True, details: dict[str, Any] | None = None) -> None:
        """Append one event (values under secret-looking keys are redacted)."""
        data = _scrub(details or {})
        actor, target, ip = _clean(actor, 128), _clean(target, 256), _clean(ip, 64)
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO audit (at, actor, action, target, ip, success, details) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (now(), actor, action, target, ip, int(success),
                          _bounded_json(data)))
            self._count += 1
            if self._count % PRUNE_EVERY == 0:
                conn.execute("DELETE FROM audit WHERE id <= (SELECT MAX(id) FROM audit) - ?",
                             (KEEP,))
        log.info("audit %s %s actor=%s target=%s ip=%s", action, "ok" if success else "FAILED",
                 actor, target, ip)

    def recent(self, limit: int = 100) -> list[AuditEntry]:
        """Return the latest events, newest first."""
        rows = self.db.query("SELECT * FROM audit ORDER BY id DESC LIMIT ?", (limit,))
        return [AuditEntry(id=r["id"], at=r["at"], actor=r["actor"], action=r["action"],
                           target=r["target"], ip=r["ip"], success=bool(r["success"]),
                           details=json.loads(r["details"])) for r in rows]
