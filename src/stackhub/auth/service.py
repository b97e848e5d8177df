"""Sign people in: first-run setup, passwords, TOTP, sessions, and turn credentials into callers."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass

from stackhub.auth import passwords, setup, totp
from stackhub.auth.accounts import RESERVED, Accounts
from stackhub.auth.audit import AuditLog
from stackhub.auth.models import (
    USERNAME_PATTERN,
    LoginRequest,
    LoginResult,
    PasswordChange,
    Principal,
    RecoveryCodes,
    Role,
    SessionRead,
    SetupRequest,
    StatusRead,
    TotpEnrolment,
    UserBrief,
)
from stackhub.auth.ratelimit import Clock, code_guard, login_guard
from stackhub.auth.sessions import MAX_CODE_FAILURES, SessionRecord, Sessions
from stackhub.auth.settings import SettingsStore
from stackhub.auth.sockets import SocketRegistry
from stackhub.auth.tokens import Tokens
from stackhub.auth.users import UserRecord, Users
from stackhub.config import Paths
from stackhub.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from stackhub.state.db import Database

BAD_LOGIN = "invalid username or password"
BAD_CODE = "invalid or already used code"
_USERNAME = re.compile(USERNAME_PATTERN)


@dataclass(frozen=True)
class SignIn:
    """A started session: the answer plus the cookie value to set."""

    result: LoginResult
    cookie: str
    session: SessionRecord


class AuthService:
    """The auth domain's entry points, used by the API, the websocket and the CLI."""

    def __init__(self, *, db: Database, paths: Paths, clock: Clock = time.monotonic) -> None:
        """Create the stores and counters of one server."""
        self.users = Users(db)
        self.sessions = Sessions(db)
        self.tokens = Tokens(db)
        self.settings = SettingsStore(db)
        self.audit = AuditLog(db)
        self.sockets = SocketRegistry()
        self.login_guard = login_guard(clock)
        self.code_guard = code_guard(clock)
        self.setup_path = setup.setup_token_file(paths.secrets)
        self._stripes = [threading.Lock() for _ in range(64)]
        self.accounts = Accounts(users=self.users, sessions=self.sessions, tokens=self.tokens,
                                 audit=self.audit, sockets=self.sockets,
                                 setup_path=self.setup_path)

    # first run -----------------------------------------------------------------------------

    def prepare_setup(self) -> None:
        """At start: while no admin exists, make and print the setup token; else drop it."""
        if self.users.admin_exists():
            setup.discard(self.setup_path)
            return
        setup.announce(self.setup_path, setup.ensure(self.setup_path))

    def setup(self, request: SetupRequest, *, ip: str, user_agent: str) -> SignIn:
        """Create the first admin with the one-time setup token and sign them in."""
        self.login_guard.check(ip)
        if self.users.admin_exists():
            self.audit.record(actor=request.username, action="setup", ip=ip, success=False,
                              details={"reason": "already complete"})
            raise Forbidden("setup is already complete: sign in instead",
                            details={"reason": "setup_done"})
        if not setup.matches(self.setup_path, request.setup_token):
            self.login_guard.fail(ip)
            self.audit.record(actor=request.username, action="setup", ip=ip, success=False,
                              details={"reason": "wrong setup token"})
            raise Unauthorized("invalid setup token: use the one printed in the server log",
                               details={"reason": "bad_setup_token"})
        if request.username in RESERVED:
            raise Invalid(f"the user name {request.username!r} is reserved")
        passwords.check_policy(request.password, username=request.username)
        user = self.users.create(request.username, Role.ADMIN,
                                 passwords.hash_password(request.password), first_admin=True)
        setup.discard(self.setup_path)
        self.audit.record(actor=user.name, action="setup", target=user.name, ip=ip)
        return self._start(user, ip=ip, user_agent=user_agent, method="setup")

    def status(self, principal: Principal | None) -> StatusRead:
        """Describe setup and sign-in state for the console."""
        user = None
        if principal is not None:
            user = UserBrief(name=principal.name, role=Role(principal.role),
                             totp_enabled=principal.totp_enabled)
        return StatusRead(setup_required=not self.users.admin_exists(),
                          authenticated=principal is not None, user=user,
                          require_2fa=self.settings.get().require_2fa)

    # credentials -> principal ---------------------------------------------------------------

    def principal(self, user: UserRecord, *, via: str, session: SessionRecord | None = None,
                  token_id: str | None = None) -> Principal:
        """Describe a signed-in user."""
        needs = self.settings.get().require_2fa and not user.totp_enabled
        return Principal(name=user.name, role=user.role, via=via,
                         session_id=session.id if session else None, token_id=token_id,
                         totp_enabled=user.totp_enabled, needs_enrolment=needs,
                         csrf=session.csrf if session else None)

    def _active(self, username: str) -> UserRecord | None:
        user = self.users.find(username)
        return None if user is None or user.disabled else user

    def token_principal(self, secret: str) -> Principal | None:
        """Return the caller for an API token, or None."""
        record = self.tokens.lookup(secret)
        user = self._active(record.username) if record else None
        if record is None or user is None:
            return None
        return self.principal(user, via="token", token_id=record.id)

    def session_principal(self, secret: str) -> Principal | None:
        """Return the caller for a full (not pending) session cookie, or None."""
        record = self.sessions.lookup(secret)
        user = self._active(record.username) if record and not record.pending else None
        if record is None or user is None:
            return None
        return self.principal(user, via="session", session=record)

    def pending_session(self, secret: str | None) -> SessionRecord:
        """Return the session waiting for a TOTP code, or raise Unauthorized."""
        record = self.sessions.lookup(secret) if secret else None
        if record is None or not record.pending:
            raise Unauthorized("no sign-in is waiting for a code: sign in with your password",
                               details={"reason": "no_pending_sign_in"})
        return record

    # sign-in --------------------------------------------------------------------------------

    def _start(self, user: UserRecord, *, ip: str, user_agent: str, method: str) -> SignIn:
        self.sessions.purge_expired()  # sessions nobody presents again would pile up
        cookie, session = self.sessions.create(user.name, pending=False, ip=ip,
                                               user_agent=user_agent)
        self.audit.record(actor=user.name, action="login", target=user.name, ip=ip,
                          details={"method": method, "session": session.id})
        return SignIn(LoginResult(totp_required=False, user=user.brief()), cookie, session)

    def drop_cookie_session(self, secret: str | None) -> None:
        """End the session a request carried, if any (rotation at sign-in)."""
        record = self.sessions.lookup(secret) if secret else None
        if record is not None:
            self.sessions.revoke(record.id)
            self.sockets.close_sessions([record.id], "session rotated")

    def _password_ok(self, name: str, password: str, *, ip: str) -> UserRecord:
        """Check a password under the back-off, or raise Unauthorized."""
        # serialised per account: parallel guesses cannot all pass the check before the first
        # failure is counted
        with self._stripes[hash(name) % len(self._stripes)]:
            self.login_guard.check(ip, name)
            user = self.users.find(name) if _USERNAME.match(name) else None
            if user is None:
                passwords.burn(password)
                reason = "unknown user"
            elif not passwords.verify(user.password_hash, password):
                reason = "wrong password"
            elif user.disabled:
                reason = "disabled"
            else:
                self.login_guard.succeed(ip, name)
                return user
            self.login_guard.fail(ip, name)
        self.audit.record(actor=name[:64], action="login", ip=ip, success=False,
                          details={"reason": reason})
        raise Unauthorized(BAD_LOGIN, details={"reason": "bad_login"})

    def login(self, request: LoginRequest, *, ip: str, user_agent: str,
              old_cookie: str | None) -> SignIn:
        """Check a password; start a session, or a pending one when TOTP is on."""
        name = request.username.strip().lower()
        user = self._password_ok(name, request.password, ip=ip)
        if passwords.needs_rehash(user.password_hash):
            self.users.set_password(name, passwords.hash_password(request.password))
        self.drop_cookie_session(old_cookie)
        if not user.totp_enabled:
            return self._start(user, ip=ip, user_agent=user_agent, method="password")
        cookie, session = self.sessions.create(name, pending=True, ip=ip, user_agent=user_agent)
        self.audit.record(actor=name, action="login.password", target=name, ip=ip,
                          details={"next": "totp"})
        return SignIn(LoginResult(totp_required=True, user=None), cookie, session)

    def check_code(self, user: UserRecord, code: str, *, ip: str) -> str:
        """Accept a TOTP code (each step once) or an unused recovery code; return which."""
        self.code_guard.check(ip, user.name)
        if user.totp_secret is not None:
            step = totp.match_step(user.totp_secret, code, after=user.totp_last_step)
            if step is not None and self.users.use_step(user.name, step):
                self.code_guard.succeed(ip, user.name)
                return "totp"
            if not totp.is_totp_code(code) and \
                    self.users.use_recovery(user.name, totp.recovery_digest(code)):
                self.code_guard.succeed(ip, user.name)
                self.audit.record(actor=user.name, action="totp.recovery_used", ip=ip,
                                  details={"left": self.users.recovery_left(user.name)})
                return "recovery"
        self.code_guard.fail(ip, user.name)
        self.audit.record(actor=user.name, action="totp.check", ip=ip, success=False)
        raise Unauthorized(BAD_CODE, details={"reason": "bad_code"})

    def complete_totp(self, session: SessionRecord, code: str, *, ip: str,
                      user_agent: str) -> SignIn:
        """Finish a pending sign-in with a code; the session id is rotated."""
        user = self._active(session.username)
        if user is None:
            self.sessions.revoke(session.id)
            raise Unauthorized(BAD_LOGIN, details={"reason": "bad_login"})
        try:
            method = self.check_code(user, code, ip=ip)
        except Unauthorized:
            if self.sessions.code_failed(session.id) >= MAX_CODE_FAILURES:
                self.sessions.revoke(session.id)
            raise
        self.sessions.revoke(session.id)
        return self._start(user, ip=ip, user_agent=user_agent, method=method)

    def logout(self, principal: Principal, *, ip: str) -> None:
        """End the caller's session and close its websockets."""
        if principal.session_id is None:
            return
        self.sessions.revoke(principal.session_id)
        self.sockets.close_sessions([principal.session_id])
        self.audit.record(actor=principal.name, action="logout", ip=ip,
                          details={"session": principal.session_id})

    # self-service ---------------------------------------------------------------------------

    def account(self, principal: Principal) -> UserRecord:
        """Return the caller's account; the built-in admin token has none."""
        if not principal.has_account:
            raise Forbidden("the built-in admin token has no user account; sign in as a user")
        return self.users.get(principal.name)

    def list_sessions(self, principal: Principal) -> list[SessionRead]:
        """Return the caller's sessions."""
        self.account(principal)
        return [SessionRead(id=s.id, created=s.created_at, last_seen=s.last_seen, ip=s.ip,
                            user_agent=s.user_agent, current=s.id == principal.session_id)
                for s in self.sessions.of_user(principal.name)]

    def revoke_session(self, principal: Principal, session_id: str, *, ip: str) -> None:
        """End one of the caller's sessions."""
        self.account(principal)
        if session_id not in {s.id for s in self.sessions.of_user(principal.name)}:
            raise NotFound(f"no session {session_id!r}")
        self.sessions.revoke(session_id)
        self.sockets.close_sessions([session_id])
        self.audit.record(actor=principal.name, action="session.revoke", ip=ip,
                          details={"session": session_id})

    def change_password(self, principal: Principal, change: PasswordChange, *, ip: str) -> None:
        """Change the caller's password and end their other sessions."""
        user = self.account(principal)
        with self._stripes[hash(user.name) % len(self._stripes)]:
            self.login_guard.check(ip, user.name)
            right = passwords.verify(user.password_hash, change.current)
            if not right:
                self.login_guard.fail(ip, user.name)
        if not right:
            self.audit.record(actor=user.name, action="password.change", ip=ip, success=False)
            raise Forbidden("the current password is wrong", details={"reason": "bad_password"})
        passwords.check_policy(change.new, username=user.name)
        self.users.set_password(user.name, passwords.hash_password(change.new))
        ended = self.sessions.revoke_user(user.name, keep=principal.session_id)
        self.sockets.close_sessions(ended, "password changed")
        self.audit.record(actor=user.name, action="password.change", target=user.name, ip=ip,
                          details={"sessions_ended": len(ended)})

    def reauthenticate(self, principal: Principal, password: str, code: str | None, *,
                       ip: str) -> None:
        """Step-up: check the caller's password (and TOTP code when enrolled) under the
        sign-in back-off, or raise Unauthorized (the host terminal asks before opening)."""
        user = self.account(principal)
        self._password_ok(user.name, password, ip=ip)
        if user.totp_enabled:
            if not code:
                raise Unauthorized("a two-factor code is required",
                                   details={"reason": "totp_required"})
            self.check_code(user, code, ip=ip)

    def enrol_totp(self, principal: Principal) -> TotpEnrolment:
        """Start TOTP enrolment: a new secret, confirmed by a first code."""
        user = self.account(principal)
        if user.totp_enabled:
            raise Conflict("two-factor authentication is already on; turn it off first")
        secret = totp.new_secret()
        self.users.set_totp_pending(user.name, secret)
        uri = totp.otpauth_uri(secret, user.name)
        return TotpEnrolment(secret=secret, otpauth_uri=uri, qr_svg=totp.qr_svg(uri))

    def confirm_totp(self, principal: Principal, code: str, *, ip: str) -> RecoveryCodes:
        """Turn TOTP on once a code from the new secret checks out; return recovery codes."""
        user = self.account(principal)
        if user.totp_pending is None:
            raise Conflict("no enrolment is in progress: start with POST /api/auth/totp/enroll")
        self.code_guard.check(ip, user.name)
        step = totp.match_step(user.totp_pending, code, after=0)
        if step is None:
            self.code_guard.fail(ip, user.name)
            self.audit.record(actor=user.name, action="totp.enable", ip=ip, success=False)
            raise Invalid("the code does not match: check the authenticator app's clock")
        codes = totp.new_recovery_codes()
        self.users.enable_totp(user.name, user.totp_pending, step,
                               [totp.recovery_digest(c) for c in codes])
        self.audit.record(actor=user.name, action="totp.enable", target=user.name, ip=ip)
        return RecoveryCodes(recovery_codes=codes)

    def disable_totp(self, principal: Principal, code: str, *, ip: str) -> None:
        """Turn TOTP off, proven by a current code or a recovery code."""
        user = self.account(principal)
        if not user.totp_enabled:
            raise Conflict("two-factor authentication is not on")
        try:
            self.check_code(user, code, ip=ip)
        except Unauthorized as err:  # the caller is signed in: a wrong code is not a 401
            raise Forbidden(BAD_CODE, details={"reason": "bad_code"}) from err
        self.users.disable_totp(user.name)
        self.audit.record(actor=user.name, action="totp.disable", target=user.name, ip=ip)
