"""The auth service without HTTP: setup, sign-in, sessions, tokens, accounts and grants."""

from __future__ import annotations

import stat
import time

import pytest

from stackhub.auth import totp
from stackhub.auth.models import (
    LoginRequest,
    Principal,
    Role,
    SecuritySettings,
    SetupRequest,
    TokenCreate,
    UserCreate,
    UserUpdate,
)
from stackhub.auth.service import AuthService
from stackhub.config import Paths
from stackhub.errors import AlreadyExists, Conflict, Forbidden, Invalid, Unauthorized
from stackhub.services import Services

PW = "a-long-enough-password"


@pytest.fixture
def auth(services: Services) -> AuthService:
    """The auth service of a fresh install (setup pending)."""
    return services.auth


def admin(auth: AuthService) -> Principal:
    """Create the first admin through setup and return it as a principal."""
    token = auth.setup_path.read_text().strip()
    auth.setup(SetupRequest(setup_token=token, username="alice", password=PW), ip="ip",
               user_agent="ua")
    return auth.principal(auth.users.get("alice"), via="session")


def test_setup_token_lifecycle(auth: AuthService, paths: Paths) -> None:
    assert stat.S_IMODE(auth.setup_path.stat().st_mode) == 0o600
    token = auth.setup_path.read_text().strip()
    auth.prepare_setup()  # a restart before setup keeps the same token
    assert auth.setup_path.read_text().strip() == token
    with pytest.raises(Unauthorized):
        auth.setup(SetupRequest(setup_token="setup_wrong", username="mallory", password=PW),
                   ip="ip", user_agent="ua")
    admin(auth)
    assert not auth.setup_path.exists()
    with pytest.raises(Forbidden):
        auth.setup(SetupRequest(setup_token=token, username="mallory", password=PW), ip="ip",
                   user_agent="ua")
    restarted = AuthService(db=auth.users.db, paths=paths)
    restarted.prepare_setup()
    assert not restarted.setup_path.exists()


def test_an_admin_created_with_the_admin_token_ends_setup(auth: AuthService) -> None:
    builtin = Principal(name="local-admin", role="admin", via="admin-token")
    auth.accounts.create_user(UserCreate(username="root2", password=PW, role=Role.ADMIN),
                              actor=builtin, ip="")
    assert not auth.setup_path.exists()
    assert not auth.status(None).setup_required


def test_login_unknown_wrong_and_disabled_raise_the_same(auth: AuthService) -> None:
    owner = admin(auth)
    auth.accounts.create_user(UserCreate(username="bob", password=PW), actor=owner, ip="")
    auth.accounts.update_user("bob", UserUpdate(disabled=True), actor=owner, ip="")
    messages = set()
    for i, (name, password) in enumerate([("ghost", PW), ("alice", PW + "x"), ("bob", PW)]):
        with pytest.raises(Unauthorized) as caught:
            auth.login(LoginRequest(username=name, password=password), ip=f"ip{i}",
                       user_agent="", old_cookie=None)
        messages.add(caught.value.message)
    assert messages == {"invalid username or password"}


def test_login_rotates_an_existing_session(auth: AuthService) -> None:
    admin(auth)
    first = auth.login(LoginRequest(username="Alice", password=PW), ip="ip", user_agent="ua",
                       old_cookie=None)
    second = auth.login(LoginRequest(username="alice", password=PW), ip="ip", user_agent="ua",
                        old_cookie=first.cookie)
    assert auth.session_principal(first.cookie) is None
    assert auth.session_principal(second.cookie) is not None


def test_totp_sign_in_flow(auth: AuthService) -> None:
    owner = admin(auth)
    secret = auth.enrol_totp(owner).secret
    with pytest.raises(Invalid):
        auth.confirm_totp(owner, "000000", ip="ip")
    codes = auth.confirm_totp(owner, totp.code_at(secret, time.time() - 30), ip="ip")
    assert len(codes.recovery_codes) == 10
    with pytest.raises(Conflict):
        auth.enrol_totp(owner)
    step = auth.login(LoginRequest(username="alice", password=PW), ip="ip", user_agent="",
                      old_cookie=None)
    assert step.result.totp_required and step.session.pending
    assert auth.session_principal(step.cookie) is None
    pending = auth.pending_session(step.cookie)
    done = auth.complete_totp(pending, totp.code_at(secret, time.time()), ip="ip",
                              user_agent="")
    assert done.cookie != step.cookie
    assert auth.sessions.lookup(step.cookie) is None
    principal = auth.session_principal(done.cookie)
    assert principal is not None and principal.totp_enabled
    with pytest.raises(Forbidden):
        auth.disable_totp(principal, "123456", ip="ip")
    auth.disable_totp(principal, codes.recovery_codes[0], ip="ip")
    assert not auth.users.get("alice").totp_enabled


def test_required_2fa_marks_unenrolled_principals(auth: AuthService) -> None:
    admin(auth)
    auth.settings.put(SecuritySettings(require_2fa=True))
    principal = auth.principal(auth.users.get("alice"), via="session")
    assert principal.needs_enrolment


def test_tokens_are_per_user_and_revocable(auth: AuthService) -> None:
    owner = admin(auth)
    created = auth.accounts.create_token(owner, TokenCreate(name="laptop"), ip="")
    assert created.token.startswith("sht_")
    found = auth.token_principal(created.token)
    assert found is not None and found.token_id == created.id and found.name == "alice"
    listed = auth.accounts.list_tokens(found)
    assert [t.id for t in listed] == [created.id] and listed[0].current
    auth.accounts.revoke_token(owner, created.id, ip="")
    assert auth.token_principal(created.token) is None
    builtin = Principal(name="local-admin", role="admin", via="admin-token")
    with pytest.raises(Forbidden):
        auth.accounts.create_token(builtin, TokenCreate(name="x"), ip="")


def test_accounts_guard_against_lockout_and_duplicates(auth: AuthService) -> None:
    owner = admin(auth)
    with pytest.raises(AlreadyExists):
        auth.accounts.create_user(UserCreate(username="alice", password=PW), actor=owner,
                                  ip="")
    with pytest.raises(Invalid):
        auth.accounts.create_user(UserCreate(username="local-admin", password=PW),
                                  actor=owner, ip="")
    with pytest.raises(Conflict):
        auth.accounts.update_user("alice", UserUpdate(disabled=True), actor=owner, ip="")
    with pytest.raises(Conflict):
        auth.accounts.delete_user("alice", actor=owner, ip="")


def test_grants_are_cached_and_invalidated(auth: AuthService) -> None:
    owner = admin(auth)
    auth.accounts.create_user(UserCreate(username="bob", password=PW), actor=owner, ip="")
    bob = auth.principal(auth.users.get("bob"), via="token")
    assert not auth.accounts.may_see(bob, "wiki")
    auth.accounts.set_grants("bob", ["wiki", "wiki"], actor=owner, ip="")
    assert auth.accounts.may_see(bob, "wiki") and not auth.accounts.may_see(bob, "other")
    auth.accounts.forget_instance("wiki")
    assert not auth.accounts.may_see(bob, "wiki")
    assert auth.accounts.may_see(owner, "anything")
    with pytest.raises(Invalid):
        auth.accounts.set_grants("bob", ["../etc"], actor=owner, ip="")


def test_reset_password_ends_sessions_and_can_reset_2fa(auth: AuthService) -> None:
    owner = admin(auth)
    secret = auth.enrol_totp(owner).secret
    auth.confirm_totp(owner, totp.code_at(secret, time.time()), ip="")
    auth.accounts.create_user(UserCreate(username="bob", password=PW), actor=owner, ip="")
    auth.tokens.create("alice", "laptop", expires_days=None)
    auth.tokens.create("bob", "other user's", expires_days=None)
    auth.accounts.reset_password("alice", "another-long-password", actor="cli:root",
                                 reset_2fa=True)
    assert not auth.users.get("alice").totp_enabled
    assert auth.sessions.of_user("alice") == []
    assert auth.tokens.of_user("alice") == [], "a reset is a recovery: tokens go too"
    assert len(auth.tokens.of_user("bob")) == 1
    entry = auth.audit.recent(1)[0]
    assert entry.action == "user.reset_password" and entry.actor == "cli:root"
    assert entry.details["api_keys_ended"] == 1


def test_expired_sessions_are_purged_at_sign_in(auth: AuthService) -> None:
    admin(auth)
    with auth.users.db.transaction() as conn:
        conn.execute("UPDATE sessions SET expires_at = '2000-01-01T00:00:00.000+00:00'")
    auth.login(LoginRequest(username="alice", password=PW), ip="ip", user_agent="",
               old_cookie=None)
    rows = auth.users.db.query("SELECT expires_at FROM sessions")
    assert len(rows) == 1 and not rows[0]["expires_at"].startswith("2000")


@pytest.mark.parametrize("details", [
    {"error": "x" * 10_000},  # one long value
    {f"k{i}": "y" * 150 for i in range(60)},  # many values, each short
    {"error": '"\\' * 5_000},  # escapes double the encoding
    {"error": "容器" * 3_000},  # non-ASCII escapes take six characters each
])
def test_long_audit_details_stay_readable_json(auth: AuthService,
                                               details: dict[str, str]) -> None:
    auth.audit.record(actor="cli:root", action="instance.install", target="blog",
                      success=False, details=details)
    entry = auth.audit.recent(1)[0]  # reading back parses the stored JSON
    assert entry.action == "instance.install"
    stored = auth.audit.db.query("SELECT details FROM audit ORDER BY id DESC LIMIT 1")[0][0]
    assert len(stored) <= 4096 and entry.details
