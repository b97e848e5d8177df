"""Manage accounts (admins) and API tokens (everyone, their own), with audit records."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from stackhub.auth import passwords, setup
from stackhub.auth.audit import AuditLog
from stackhub.auth.models import (
    BUILTIN_ADMIN,
    Principal,
    Role,
    TokenCreate,
    TokenCreated,
    TokenRead,
    UserCreate,
    UserRead,
    UserUpdate,
)
from stackhub.auth.sessions import Sessions
from stackhub.auth.sockets import SocketRegistry
from stackhub.auth.tokens import Tokens
from stackhub.auth.users import Users
from stackhub.errors import Conflict, Forbidden, Invalid

RESERVED = frozenset({BUILTIN_ADMIN, "root", "system", "stackhub"})
_INSTANCE = re.compile(r"^[a-z0-9][a-z0-9-]{0,38}[a-z0-9]$|^[a-z0-9]$")


class Accounts:
    """User administration, member grants and API tokens."""

    def __init__(self, *, users: Users, sessions: Sessions, tokens: Tokens, audit: AuditLog,
                 sockets: SocketRegistry, setup_path: Path) -> None:
        """Share the stores of the auth service."""
        self.users = users
        self.sessions = sessions
        self.tokens = tokens
        self.audit = audit
        self.sockets = sockets
        self.setup_path = setup_path
        self._grants: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    # users (admins) -------------------------------------------------------------------------

    def list_users(self) -> list[UserRead]:
        """Return every account."""
        return [self.users.read(u) for u in self.users.all()]

    def create_user(self, request: UserCreate, *, actor: Principal, ip: str) -> UserRead:
        """Add an account with a password that meets the policy."""
        if request.username in RESERVED:
            raise Invalid(f"the user name {request.username!r} is reserved")
        passwords.check_policy(request.password, username=request.username)
        user = self.users.create(request.username, request.role,
                                 passwords.hash_password(request.password))
        if user.role == Role.ADMIN:
            setup.discard(self.setup_path)  # an admin exists now: setup can no longer happen
        self.audit.record(actor=actor.name, action="user.create", target=user.name, ip=ip,
                          details={"role": user.role})
        return self.users.read(user)

    def _not_self(self, actor: Principal, name: str, what: str) -> None:
        if actor.has_account and actor.name == name:
            raise Conflict(f"you cannot {what} your own account; ask another admin")

    def update_user(self, name: str, change: UserUpdate, *, actor: Principal,
                    ip: str) -> UserRead:
        """Disable, enable or change the role of an account; its sessions end if it loses access."""
        if change.disabled or change.role == Role.MEMBER:
            self._not_self(actor, name, "disable or demote")
        before = self.users.get(name)
        user = self.users.update(name, disabled=change.disabled, role=change.role)
        ended: list[str] = []
        if user.disabled and not before.disabled:
            ended = self.sessions.revoke_user(name)
        if user.disabled != before.disabled or user.role != before.role:
            self.sockets.close_user(name, "account changed")
        self.audit.record(actor=actor.name, action="user.update", target=name, ip=ip,
                          details={"disabled": user.disabled, "role": user.role,
                                   "sessions_ended": len(ended)})
        return self.users.read(user)

    def delete_user(self, name: str, *, actor: Principal, ip: str) -> None:
        """Delete an account with its sessions, tokens, grants and recovery codes."""
        self._not_self(actor, name, "delete")
        self.users.delete(name)
        self.sockets.close_user(name, "account deleted")
        self._forget_grants(name)
        self.audit.record(actor=actor.name, action="user.delete", target=name, ip=ip)

    def reset_password(self, name: str, password: str, *, actor: str,
                       reset_2fa: bool = False) -> None:
        """Set a new password locally (server CLI only); end the user's sessions and tokens.

        A reset is a recovery: whoever had the account's credentials must lose them all, API
        tokens included (a running server refuses them at once; open sockets end at their next
        check, within a minute).
        """
        user = self.users.get(name)
        passwords.check_policy(password, username=name)
        self.users.set_password(name, passwords.hash_password(password))
        if reset_2fa and user.totp_enabled:
            self.users.disable_totp(name)
        ended = self.sessions.revoke_user(name)
        revoked = self.tokens.revoke_user(name)
        self.audit.record(actor=actor, action="user.reset_password", target=name,
                          details={"sessions_ended": len(ended), "api_keys_ended": len(revoked),
                                   "reset_2fa": reset_2fa})

    # grants ---------------------------------------------------------------------------------

    def set_grants(self, name: str, instances: list[str], *, actor: Principal,
                   ip: str) -> UserRead:
        """Replace the instances a member may see and open."""
        self.users.get(name)
        bad = [i for i in instances if not _INSTANCE.match(i)]
        if bad:
            raise Invalid(f"not instance names: {', '.join(repr(b) for b in bad[:5])}")
        self.users.set_grants(name, sorted(set(instances)))
        self._forget_grants(name)
        self.audit.record(actor=actor.name, action="user.grants", target=name, ip=ip,
                          details={"instances": sorted(set(instances))})
        return self.users.read(self.users.get(name))

    def _forget_grants(self, name: str | None = None) -> None:
        with self._lock:
            if name is None:
                self._grants.clear()
            else:
                self._grants.pop(name, None)

    def granted(self, principal: Principal) -> frozenset[str] | None:
        """Return the instances the caller may see; None means all (admins)."""
        if principal.is_admin:
            return None
        with self._lock:
            cached = self._grants.get(principal.name)
        if cached is None:
            cached = frozenset(self.users.grants(principal.name))
            with self._lock:
                self._grants[principal.name] = cached
        return cached

    def may_see(self, principal: Principal, instance: str) -> bool:
        """Say whether the caller may see and open an instance."""
        allowed = self.granted(principal)
        return allowed is None or instance in allowed

    def forget_instance(self, instance: str) -> None:
        """Drop every grant on an instance (it is being removed)."""
        self.users.forget_instance(instance)
        self._forget_grants()

    # API tokens (own) -----------------------------------------------------------------------

    def _owner(self, principal: Principal) -> str:
        if not principal.has_account:
            raise Forbidden("the built-in admin token has no user account to own tokens; "
                            "sign in as a user (`stackhub login`)")
        return principal.name

    def list_tokens(self, principal: Principal) -> list[TokenRead]:
        """Return the caller's tokens."""
        return [t.read(current=principal.token_id)
                for t in self.tokens.of_user(self._owner(principal))]

    def create_token(self, principal: Principal, request: TokenCreate, *,
                     ip: str) -> TokenCreated:
        """Make a token for the caller; its secret is returned once."""
        owner = self._owner(principal)
        secret, record = self.tokens.create(owner, request.name,
                                            expires_days=request.expires_days)
        self.audit.record(actor=owner, action="token.create", target=record.id, ip=ip,
                          details={"name": record.name, "expires_at": record.expires_at})
        return TokenCreated(id=record.id, name=record.name, token=secret,
                            expires_at=record.expires_at)

    def revoke_token(self, principal: Principal, token_id: str, *, ip: str) -> None:
        """Revoke one of the caller's tokens and close sockets opened with it."""
        record = self.tokens.revoke(self._owner(principal), token_id)
        self.sockets.close_token(record.id)
        self.audit.record(actor=principal.name, action="token.revoke", target=record.id,
                          ip=ip, details={"name": record.name})
