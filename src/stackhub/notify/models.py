"""Schemas of the notify domain: notifications, channels (webhook, e-mail), test results."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class Kind(StrEnum):
    """What a notification is about (the console renders its text from kind + params)."""

    UPDATE_AVAILABLE = "update_available"
    UPDATE_FAILED = "update_failed"
    BACKUP_FAILED = "backup_failed"
    BACKUP_MISSING = "backup_missing"
    BACKUP_CHECK_FAILED = "backup_check_failed"
    SYSTEM_BACKUP_FAILED = "system_backup_failed"
    SYSTEM_BACKUP_MISSING = "system_backup_missing"
    RECOVERY_FAILED = "recovery_failed"
    CERTIFICATE_EXPIRING = "certificate_expiring"
    DISK_FULL = "disk_full"
    APP_UNHEALTHY = "app_unhealthy"
    ENGINE_UNREACHABLE = "engine_unreachable"
    AUTO_UPDATE = "auto_update"
    TEST = "test"


class Severity(StrEnum):
    """How urgent a notification is."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class ChannelKind(StrEnum):
    """Where notifications are delivered besides the console."""

    WEBHOOK = "webhook"
    EMAIL = "email"


class NotificationRead(BaseModel):
    """One notification as the bell lists it."""

    id: int
    kind: Kind
    severity: Severity
    params: dict[str, Any] = Field(description="Values the text is built from (instance, "
                                   "version, error, percent...); the console renders the text "
                                   "in the reader's language from kind and params.")
    text: str = Field(description="The text in English (as e-mails and webhooks carry it).")
    link: str = Field(description="The console path where the reader can act, e.g. "
                      "/apps/nextcloud or /backups.")
    instance: str | None = None
    read: bool = Field(description="Whether the caller marked it read.")
    resolved: bool = Field(description="Whether the condition cleared (the backup succeeded "
                           "again, the engine answers...).")
    created_at: str
    updated_at: str
    resolved_at: str | None = None


class NotificationList(BaseModel):
    """The caller's notifications, newest first, and how many are unread."""

    items: list[NotificationRead]
    unread: int


class ReadAllResult(BaseModel):
    """How many notifications a mark-all-read changed."""

    marked: int


class WebhookSettings(BaseModel):
    """Deliver every notification as a signed JSON POST."""

    enabled: bool = True
    url: str = Field(min_length=8, max_length=2000, description="An http:// or https:// URL "
                     "(no user:password part).")
    rotate_secret: bool = Field(default=False, description="Make a new signing secret (one is "
                                "made the first time anyway); the answer shows it once.")


class EmailSettings(BaseModel):
    """Deliver every notification by e-mail through an SMTP server."""

    enabled: bool = True
    host: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9.\-:\[\]]+$")
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = Field(default=True, description="Upgrade the connection with STARTTLS "
                           "(refused by a server that does not offer it).")
    ssl: bool = Field(default=False, description="Connect with TLS from the start (port 465).")
    username: str | None = Field(default=None, max_length=255)
    password: str | None = Field(default=None, max_length=1000, description="Stored 0600 "
                                 "under secrets/notify/ and never shown again; omit to keep "
                                 "the stored one, empty to remove it.")
    sender: str = Field(min_length=3, max_length=255, pattern=r"^[^\s<>@]+@[^\s<>@]+$")
    recipients: list[str] = Field(min_length=1, max_length=20)


class ChannelRead(BaseModel):
    """A delivery channel's settings (secrets are never shown, only whether they are set)."""

    kind: ChannelKind
    enabled: bool
    configured: bool
    url: str | None = None
    secret_set: bool = False
    secret: str | None = Field(default=None, description="The webhook's signing secret, only in "
                               "the answer that created it (X-StackHub-Signature: sha256=HMAC "
                               "of the body).")
    host: str | None = None
    port: int | None = None
    starttls: bool | None = None
    ssl: bool | None = None
    username: str | None = None
    password_set: bool = False
    sender: str | None = None
    recipients: list[str] = Field(default_factory=list)
    last_at: str | None = Field(default=None, description="When a delivery was last tried.")
    last_ok: bool | None = None
    last_error: str | None = None


class TestResult(BaseModel):
    """The outcome of sending a test notification through one channel."""

    kind: ChannelKind
    ok: bool
    error: str | None = None
