"""Schemas of the auth domain: users, sessions, tokens, two-factor auth, settings, audit."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

USERNAME_PATTERN = r"^[a-z][a-z0-9._-]{0,31}$"
PASSWORD_FIELD = Field(min_length=1, max_length=1024)
CODE_FIELD = Field(min_length=1, max_length=64, description="A 6-digit TOTP code or a recovery "
                   "code.")
BUILTIN_ADMIN = "local-admin"
"""The name the built-in admin token (the local CLI's credential) acts under."""


class Role(StrEnum):
    """What a user may do: admins everything, members use the instances they are granted."""

    ADMIN = "admin"
    MEMBER = "member"


@dataclass(frozen=True)
class Principal:
    """Who is calling and how they proved it."""

    name: str
    role: str
    via: str = "token"  # "admin-token", "token" or "session"
    session_id: str | None = None
    token_id: str | None = None
    totp_enabled: bool = False
    needs_enrolment: bool = False
    csrf: str | None = None

    @property
    def is_admin(self) -> bool:
        """Say whether the caller has the admin role."""
        return self.role == Role.ADMIN

    @property
    def has_account(self) -> bool:
        """Say whether a user account stands behind the caller (not the built-in token)."""
        return self.via != "admin-token"


class UserBrief(BaseModel):
    """The signed-in user, as the console shows it."""

    name: str
    role: Role
    totp_enabled: bool


class UserRead(UserBrief):
    """A user account as admins see it."""

    disabled: bool
    instances: list[str] = Field(description="Instances a member is granted.")
    created_at: str
    updated_at: str


class UserCreate(BaseModel):
    """A new account."""

    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = PASSWORD_FIELD
    role: Role = Role.MEMBER


class UserUpdate(BaseModel):
    """Changes to an account (admins)."""

    disabled: bool | None = None
    role: Role | None = None


class GrantsUpdate(BaseModel):
    """The complete list of instances a member may see and open."""

    instances: list[str] = Field(max_length=1000)


class StatusRead(BaseModel):
    """What the console needs before and after sign-in."""

    setup_required: bool
    authenticated: bool
    user: UserBrief | None
    require_2fa: bool


class SetupRequest(BaseModel):
    """Create the first admin with the one-time setup token from the server console."""

    setup_token: str = Field(min_length=1, max_length=256)
    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = PASSWORD_FIELD


class UserEnvelope(BaseModel):
    """A response carrying the signed-in user."""

    user: UserBrief


class LoginRequest(BaseModel):
    """Username and password."""

    username: str = Field(min_length=1, max_length=256)
    password: str = PASSWORD_FIELD


class LoginResult(BaseModel):
    """The result of a sign-in step: either done, or a TOTP code is still needed."""

    totp_required: bool
    user: UserBrief | None


class CodeRequest(BaseModel):
    """A TOTP code or a recovery code."""

    code: str = CODE_FIELD


class PasswordChange(BaseModel):
    """Change one's own password."""

    current: str = PASSWORD_FIELD
    new: str = PASSWORD_FIELD


class SessionRead(BaseModel):
    """One of the caller's sessions."""

    id: str
    created: str
    last_seen: str
    ip: str
    user_agent: str
    current: bool


class TotpEnrolment(BaseModel):
    """A new TOTP secret to load into an authenticator app, confirmed by a first code."""

    secret: str
    otpauth_uri: str
    qr_svg: str


class RecoveryCodes(BaseModel):
    """Single-use recovery codes, shown once."""

    recovery_codes: list[str]


class TokenCreate(BaseModel):
    """A new API token."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[\w .@:+-]+$")
    expires_days: int | None = Field(default=None, ge=1, le=3650)


class TokenCreated(BaseModel):
    """A new API token; the secret is shown only in this answer."""

    id: str
    name: str
    token: str
    expires_at: str | None = None


class TokenRead(BaseModel):
    """An API token of the caller (the secret is never shown again)."""

    id: str
    name: str
    created_at: str
    last_used: str | None
    expires_at: str | None
    current: bool = False


def _check_origin(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or "*" in value:
        raise ValueError(f"{value!r} is not an origin like https://panel.example.com")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{value!r} must be scheme://host[:port] only")
    return normalise_origin(value)


def normalise_origin(value: str) -> str:
    """Return ``scheme://host[:port]`` in lower case, default ports dropped."""
    parts = urlsplit(value.strip())
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{parts.scheme.lower()}://{host}{suffix}"


class SecuritySettings(BaseModel):
    """Install-wide security settings (admins)."""

    require_2fa: bool = False
    trusted_proxies: list[str] = Field(default_factory=list, max_length=64,
                                       description="CIDRs whose X-Forwarded-* headers count.")
    allowed_origins: list[str] = Field(default_factory=list, max_length=64,
                                       description="Extra origins allowed for the console, "
                                       "besides the request's own host.")

    @field_validator("trusted_proxies")
    @classmethod
    def _check_cidrs(cls, values: list[str]) -> list[str]:
        out = []
        for value in values:
            try:
                out.append(str(ipaddress.ip_network(value.strip(), strict=False)))
            except ValueError as err:
                raise ValueError(f"{value!r} is not an IP network like 10.0.0.0/8") from err
        return out

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, values: list[str]) -> list[str]:
        return [_check_origin(v) for v in values]


class AuditEntry(BaseModel):
    """One recorded security event."""

    id: int
    at: str
    actor: str
    action: str
    target: str
    ip: str
    success: bool
    details: dict[str, Any]
