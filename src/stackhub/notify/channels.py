"""Delivery channels: rows in `notify_channels`, the webhook's signing secret and the SMTP
password in 0600 files under `secrets/notify/` (never in the database, never in answers)."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stackhub import fsutil
from stackhub.errors import Invalid, NotFound
from stackhub.notify.models import ChannelKind, ChannelRead, EmailSettings, WebhookSettings
from stackhub.state.db import Database, now

WEBHOOK_SECRET = "webhook-secret"  # noqa: S105 (a file name)
SMTP_PASSWORD = "smtp-password"  # noqa: S105 (a file name)
EMAIL = r"^[^\s<>@,;]+@[^\s<>@,;]+$"


def check_url(url: str) -> str:
    """Return a webhook URL if it is http(s) with a host and no credentials; else Invalid."""
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise Invalid("the webhook URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise Invalid(f"the webhook URL is not valid: {err}") from err
    if parts.scheme not in ("http", "https"):
        raise Invalid("the webhook URL must start with http:// or https:// "
                      f"(not {parts.scheme + ':' if parts.scheme else 'nothing'})")
    if not parts.hostname:
        raise Invalid("the webhook URL names no host")
    if parts.username is not None or parts.password is not None:
        raise Invalid("the webhook URL must not carry a user or password; the body is signed "
                      "with the channel's secret instead")
    if port == 0:
        raise Invalid("the webhook URL's port must be 1 to 65535")
    return url


def check_recipients(recipients: list[str]) -> list[str]:
    """Return the recipients if each is one plain address; else Invalid."""
    for item in recipients:
        if not re.fullmatch(EMAIL, item) or len(item) > 255:
            raise Invalid(f"{item!r} is not an e-mail address")
    return recipients


@dataclass
class Channel:
    """A stored channel with its secrets (inside the server only)."""

    kind: ChannelKind
    enabled: bool
    config: dict[str, Any] = field(default_factory=dict)
    secret: str | None = None  # webhook: signing secret; email: SMTP password
    last_at: str | None = None
    last_ok: bool | None = None
    last_error: str | None = None

    def read(self, *, show_secret: bool = False) -> ChannelRead:
        """Return the API view (a new webhook secret only when `show_secret`)."""
        cfg = self.config
        if self.kind is ChannelKind.WEBHOOK:
            return ChannelRead(kind=self.kind, enabled=self.enabled, configured=True,
                               url=cfg.get("url"), secret_set=self.secret is not None,
                               secret=self.secret if show_secret else None,
                               last_at=self.last_at, last_ok=self.last_ok,
                               last_error=self.last_error)
        return ChannelRead(kind=self.kind, enabled=self.enabled, configured=True,
                           host=cfg.get("host"), port=cfg.get("port"),
                           starttls=cfg.get("starttls"), ssl=cfg.get("ssl"),
                           username=cfg.get("username"), password_set=self.secret is not None,
                           sender=cfg.get("sender"), recipients=cfg.get("recipients", []),
                           last_at=self.last_at, last_ok=self.last_ok,
                           last_error=self.last_error)


class ChannelStore:
    """The channels' rows and secret files."""

    def __init__(self, db: Database, secrets_dir: Path) -> None:
        """Keep rows in `db`, secrets in `secrets_dir / notify`."""
        self.db = db
        self.folder = secrets_dir / "notify"

    def _secret_path(self, kind: ChannelKind) -> Path:
        return self.folder / (WEBHOOK_SECRET if kind is ChannelKind.WEBHOOK else SMTP_PASSWORD)

    def _read_secret(self, kind: ChannelKind) -> str | None:
        try:
            return self._secret_path(kind).read_text().strip() or None
        except FileNotFoundError:
            return None

    def _write_secret(self, kind: ChannelKind, value: str | None) -> None:
        path = self._secret_path(kind)
        if value is None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        fsutil.write_atomic(path, value, mode=0o600)

    def find(self, kind: ChannelKind) -> Channel | None:
        """Return a configured channel, or None."""
        rows = self.db.query("SELECT * FROM notify_channels WHERE kind = ?", (kind.value,))
        if not rows:
            return None
        row = rows[0]
        return Channel(kind=kind, enabled=bool(row["enabled"]), config=json.loads(row["config"]),
                       secret=self._read_secret(kind), last_at=row["last_at"],
                       last_ok=None if row["last_ok"] is None else bool(row["last_ok"]),
                       last_error=row["last_error"])

    def get(self, kind: ChannelKind) -> Channel:
        """Return a configured channel (NotFound otherwise)."""
        found = self.find(kind)
        if found is None:
            raise NotFound(f"the {kind.value} channel is not configured")
        return found

    def enabled(self) -> list[Channel]:
        """Return the channels deliveries go to."""
        found = (self.find(k) for k in ChannelKind)
        return [c for c in found if c is not None and c.enabled]

    def _save(self, kind: ChannelKind, enabled: bool, config: dict[str, Any]) -> None:
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO notify_channels (kind, enabled, config, updated_at) VALUES"
                         " (?,?,?,?) ON CONFLICT(kind) DO UPDATE SET enabled = excluded.enabled,"
                         " config = excluded.config, updated_at = excluded.updated_at",
                         (kind.value, int(enabled), json.dumps(config), now()))

    def set_webhook(self, request: WebhookSettings) -> tuple[Channel, bool]:
        """Store the webhook channel; return it and whether a new secret was made."""
        url = check_url(request.url.strip())
        new = request.rotate_secret or self._read_secret(ChannelKind.WEBHOOK) is None
        if new:
            self._write_secret(ChannelKind.WEBHOOK, secrets.token_urlsafe(32))
        self._save(ChannelKind.WEBHOOK, request.enabled, {"url": url})
        return self.get(ChannelKind.WEBHOOK), new

    def set_email(self, request: EmailSettings) -> Channel:
        """Store the e-mail channel (the password only when given; empty removes it)."""
        if request.ssl and request.starttls:
            raise Invalid("choose STARTTLS or TLS from the start (ssl), not both")
        check_recipients(request.recipients)
        if request.password is not None and ("\n" in request.password or
                                             "\r" in request.password):
            raise Invalid("the SMTP password must be one line")
        config = request.model_dump(exclude={"enabled", "password"})
        self._save(ChannelKind.EMAIL, request.enabled, config)
        if request.password is not None:
            self._write_secret(ChannelKind.EMAIL, request.password or None)
        return self.get(ChannelKind.EMAIL)

    def remove(self, kind: ChannelKind) -> None:
        """Forget a channel and its secret."""
        with self.db.transaction() as conn:
            gone = conn.execute("DELETE FROM notify_channels WHERE kind = ?",
                                (kind.value,)).rowcount
        if not gone:
            raise NotFound(f"the {kind.value} channel is not configured")
        self._write_secret(kind, None)

    def delivered(self, kind: ChannelKind, ok: bool, error: str | None) -> None:
        """Record the outcome of the last delivery through a channel."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE notify_channels SET last_at = ?, last_ok = ?, last_error = ? "
                         "WHERE kind = ?", (now(), int(ok), (error or "")[:500] or None,
                                            kind.value))
