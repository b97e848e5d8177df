"""Promises of docs/security.md that had no test failing when they break (issue 20, item 2).

Each test pins the documented value or behaviour itself: the idle and absolute session limits at
their real lengths, every way a session, token or socket ends, grants checked per event, the
argon2 parameters and the upgrade at sign-in, the setup back-off, the admin token's exemption
from required 2FA, each header directive, file modes, audit retention and the remove audit.
"""

from __future__ import annotations

import sqlite3
import stat
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from stackhub.auth import audit as audit_module
from stackhub.auth.sessions import stamp
from stackhub.events import Event

from .conftest import ADMIN, MEMBER, ORIGIN, Server, bearer, csrf

NEW_PASSWORD = "bob-has-another-long-password"


def _age_session(server: Server, *, idle: timedelta, expires_in: timedelta) -> None:
    """Make every session look unused for `idle`, ending (absolutely) in `expires_in`."""
    moment = datetime.now(UTC)
    with server.services.db.transaction() as conn:
        conn.execute("UPDATE sessions SET last_seen = ?, expires_at = ?",
                     (stamp(moment - idle), stamp(moment + expires_in)))


# -- session lifetimes, at their documented values ---------------------------------------------
@pytest.mark.parametrize(("idle", "alive"), [(timedelta(hours=23, minutes=58), True),
                                             (timedelta(hours=24, minutes=2), False)],
                         ids=["23h58-alive", "24h02-gone"])
def test_sessions_end_after_24_hours_idle(ready: Server, idle: timedelta, alive: bool) -> None:
    session = ready.signed_in(*MEMBER)
    _age_session(ready, idle=idle, expires_in=timedelta(days=1))
    assert session.get("/api/auth/sessions").status_code == (200 if alive else 401)


def test_sessions_end_14_days_after_sign_in_however_busy(ready: Server) -> None:
    session = ready.new_client()
    login = session.post("/api/auth/login", json={"username": MEMBER[0], "password": MEMBER[1]})
    assert login.status_code == 200, login.text
    row = ready.services.db.query("SELECT created_at, expires_at FROM sessions")[0]
    lifetime = datetime.fromisoformat(row["expires_at"]) - \
        datetime.fromisoformat(row["created_at"])
    assert lifetime == timedelta(days=14)
    cookie = next(c for c in login.headers.get_list("set-cookie")
                  if c.startswith("stackhub_session="))
    assert "Max-Age=1209600" in cookie, cookie  # the browser drops it at the same moment
    # used a second ago, but past its absolute end: gone; a minute before it: alive
    _age_session(ready, idle=timedelta(seconds=1), expires_in=timedelta(minutes=1))
    assert session.get("/api/auth/sessions").status_code == 200
    _age_session(ready, idle=timedelta(seconds=1), expires_in=-timedelta(seconds=1))
    assert session.get("/api/auth/sessions").status_code == 401


# -- every way a credential ends ---------------------------------------------------------------
def test_deleting_a_user_ends_their_sessions_and_tokens(ready: Server) -> None:
    session = ready.signed_in(*MEMBER)
    token = ready.user_token(session)
    assert ready.new_client().get("/api/tokens", headers=bearer(token)).status_code == 200
    assert ready.client.delete("/api/users/bob", headers=ready.admin_headers()).status_code == 204
    assert session.get("/api/auth/sessions").status_code == 401
    assert ready.new_client().get("/api/tokens", headers=bearer(token)).status_code == 401
    # a new account of the same name does not bring them back
    ready.create_user(*MEMBER)
    assert session.get("/api/auth/sessions").status_code == 401
    assert ready.new_client().get("/api/tokens", headers=bearer(token)).status_code == 401


def test_revoking_one_session_ends_it_and_only_it(ready: Server) -> None:
    laptop = ready.signed_in(*MEMBER)
    phone = ready.signed_in(*MEMBER)
    sessions = laptop.get("/api/auth/sessions").json()
    phone_id = next(s["id"] for s in sessions if not s["current"])
    answer = laptop.delete(f"/api/auth/sessions/{phone_id}", headers=csrf(laptop))
    assert answer.status_code == 204
    assert phone.get("/api/auth/sessions").status_code == 401
    assert laptop.get("/api/auth/sessions").status_code == 200
    # another user's session id is not yours to end
    admin = ready.signed_in(*ADMIN)
    admin_id = admin.get("/api/auth/sessions").json()[0]["id"]
    assert laptop.delete(f"/api/auth/sessions/{admin_id}",
                         headers=csrf(laptop)).status_code == 404
    assert admin.get("/api/auth/sessions").status_code == 200


# -- websockets close (4401) whenever their credential or access ends ---------------------------
def _end_session(server: Server, member: TestClient) -> None:
    other = server.signed_in(*MEMBER)
    mine = next(s["id"] for s in other.get("/api/auth/sessions").json() if not s["current"])
    assert other.delete(f"/api/auth/sessions/{mine}", headers=csrf(other)).status_code == 204


def _change_password(server: Server, member: TestClient) -> None:
    other = server.signed_in(*MEMBER)  # the change ends the *other* sessions: the socket's
    answer = other.post("/api/auth/password", headers=csrf(other),
                        json={"current": MEMBER[1], "new": NEW_PASSWORD})
    assert answer.status_code == 204, answer.text


def _admin(method: str, path: str, **body: Any) -> Any:
    def act(server: Server, member: TestClient) -> None:
        answer = server.client.request(method, path, headers=server.admin_headers(),
                                       json=body or None)
        assert answer.status_code in (200, 204), answer.text
    return act


ENDINGS = {
    "session-revoked": _end_session,
    "password-changed": _change_password,
    "user-disabled": _admin("PATCH", "/api/users/bob", disabled=True),
    "user-deleted": _admin("DELETE", "/api/users/bob"),
    "role-changed": _admin("PATCH", "/api/users/bob", role="admin"),
}


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_an_open_socket_closes_when_access_ends(ready: Server, ending: str) -> None:
    member = ready.signed_in(*MEMBER)
    bystander = ready.signed_in(*ADMIN)
    with member.websocket_connect("/api/ws", headers={"Origin": ORIGIN}) as socket, \
            bystander.websocket_connect("/api/ws", headers={"Origin": ORIGIN}) as other:
        assert socket.receive_json() == {"type": "auth_ok"}
        assert other.receive_json() == {"type": "auth_ok"}
        ENDINGS[ending](ready, member)
        with pytest.raises(WebSocketDisconnect) as caught:
            while True:  # an auth_invalid notice may come first
                socket.receive_json()
        assert caught.value.code == 4401
        other.send_json({"id": 9, "type": "ping"})  # nobody else's socket is touched
        assert other.receive_json() == {"id": 9, "type": "pong"}


def test_grants_are_checked_for_every_event_not_only_at_subscribe(ready: Server) -> None:
    def grant(names: list[str]) -> None:
        answer = ready.client.put("/api/users/bob/instances", json={"instances": names},
                                  headers=ready.admin_headers())
        assert answer.status_code == 200, answer.text

    compose = "services:\n  web:\n    image: stackhub-test/web:1\n    ports: ['18099:80']\n"
    installed = ready.client.post("/api/instances", headers=ready.admin_headers(), json={
        "source": {"kind": "compose", "compose": compose}, "name": "mine"})
    assert installed.status_code == 202, installed.text
    grant(["mine"])
    token = ready.user_token(ready.signed_in(*MEMBER))
    with TestClient(ready.app).websocket_connect("/api/ws", headers=bearer(token)) as socket:
        assert socket.receive_json()["type"] == "auth_ok"
        socket.send_json({"id": 1, "type": "subscribe", "topic": "instance", "key": "mine"})
        answer = socket.receive_json()
        while answer.get("type") == "event":  # the install's own events may come first
            answer = socket.receive_json()
        assert answer["success"] is True, answer
        grant([])  # the subscription stays open, the grant is gone
        ready.services.bus.publish(Event("instance", "mine", "test", {"marker": "revoked"}))
        time.sleep(0.3)
        grant(["mine"])
        ready.services.bus.publish(Event("instance", "mine", "test", {"marker": "granted"}))
        markers = []
        while not markers or markers[-1] != "granted":
            event = socket.receive_json()
            if event.get("type") == "event" and event["event"]["kind"] == "test":
                markers.append(event["event"]["data"]["marker"])
        assert markers == ["granted"]


# -- passwords ---------------------------------------------------------------------------------
def test_passwords_are_argon2id_at_the_owasp_baseline(ready: Server) -> None:
    stored = ready.services.db.query("SELECT password_hash FROM users WHERE name = ?",
                                     (MEMBER[0],))[0]["password_hash"]
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), stored


def test_weaker_hashes_are_upgraded_at_sign_in(ready: Server) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(MEMBER[1])
    with ready.services.db.transaction() as conn:
        conn.execute("UPDATE users SET password_hash = ? WHERE name = ?", (weak, MEMBER[0]))
    ready.signed_in(*MEMBER)
    stored = ready.services.db.query("SELECT password_hash FROM users WHERE name = ?",
                                     (MEMBER[0],))[0]["password_hash"]
    assert stored != weak
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), stored
    assert PasswordHasher().verify(stored, MEMBER[1])


# -- setup -------------------------------------------------------------------------------------
def test_setup_token_guessing_is_slowed_per_address(server: Server) -> None:
    client = server.new_client()
    body = {"username": ADMIN[0], "password": ADMIN[1]}
    for i in range(21):  # 20 free failures, then each one doubles the wait
        answer = client.post("/api/auth/setup", json={**body, "setup_token": f"setup_{i}"})
        assert answer.status_code == 401, (i, answer.text)
    answer = client.post("/api/auth/setup", json={**body, "setup_token": server.setup_token})
    assert answer.status_code == 429, answer.text
    assert int(answer.headers["retry-after"]) >= 1
    assert server.services.db.query("SELECT COUNT(*) AS n FROM users")[0]["n"] == 0


# -- required 2FA ------------------------------------------------------------------------------
def test_the_built_in_admin_token_is_exempt_from_required_2fa(ready: Server) -> None:
    answer = ready.client.put("/api/settings/security", headers=ready.admin_headers(), json={
        "require_2fa": True, "trusted_proxies": [], "allowed_origins": []})
    assert answer.status_code == 200, answer.text
    admin_without_totp = ready.signed_in(*ADMIN)
    assert admin_without_totp.get("/api/users").status_code == 403  # the rule is on
    assert ready.new_client().get("/api/users", headers=ready.admin_headers()).status_code == 200


# -- headers -----------------------------------------------------------------------------------
def _csp(value: str) -> dict[str, list[str]]:
    parts = (p.split() for p in value.split(";") if p.strip())
    return {p[0]: p[1:] for p in parts}


def test_every_documented_header_directive(ready: Server) -> None:
    for path in ("/", "/api/health", "/api/users", "/api/nope", "/apps/x"):
        headers = ready.new_client().get(path).headers
        csp = _csp(headers["content-security-policy"])
        assert csp["default-src"] == ["'self'"], csp
        assert csp["frame-ancestors"] == ["'none'"], csp
        assert csp["object-src"] == ["'none'"], csp
        assert csp["base-uri"] == ["'self'"], csp
        assert csp["form-action"] == ["'self'"], csp
        assert "'unsafe-inline'" in csp["style-src"], csp  # the UI kit's inline styles
        # inline scripts are not allowed: no script-src widening default-src 'self'
        assert "'unsafe-inline'" not in csp.get("script-src", csp["default-src"]), csp
        assert "'unsafe-eval'" not in headers["content-security-policy"]
        assert headers["cross-origin-opener-policy"] == "same-origin"
        assert headers["cross-origin-resource-policy"] == "same-origin"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "same-origin"
    # the schema is for signed-in callers only, and there is no Swagger page (no CDN to allow)
    assert ready.new_client().get("/api/openapi.json").status_code == 401
    schema = ready.new_client().get("/api/openapi.json", headers=ready.admin_headers())
    assert schema.status_code == 200 and schema.json()["paths"]
    for page in ("/api/docs", "/api/redoc", "/docs", "/openapi.json"):
        answer = ready.new_client().get(page, headers=ready.admin_headers())
        assert not any(ui in answer.text for ui in ("swagger-ui", "redoc.standalone")), page
    assert ready.new_client().get("/api/docs", headers=ready.admin_headers()).status_code == 404


# -- files -------------------------------------------------------------------------------------
def test_file_and_folder_modes(ready: Server) -> None:
    paths = ready.paths

    def mode(path: Any) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(paths.root) == 0o700
    assert mode(paths.secrets) == 0o700
    assert mode(paths.admin_token) == 0o600
    db = paths.root / "stackhub.db"
    assert mode(db) == 0o600
    for sidecar in (paths.root / "stackhub.db-wal", paths.root / "stackhub.db-shm"):
        if sidecar.exists():  # WAL files hold the same data: never readable by others
            assert mode(sidecar) & 0o077 == 0, (sidecar, oct(mode(sidecar)))


# -- audit -------------------------------------------------------------------------------------
def test_audit_keeps_the_last_50000_events(ready: Server) -> None:
    assert audit_module.KEEP == 50_000
    log = ready.services.auth.audit
    with ready.services.db.transaction() as conn:
        conn.executemany("INSERT INTO audit (at, actor, action, target, ip, success, details) "
                         "VALUES ('2000-01-01T00:00:00.000+00:00', 'old', 'test.fill', '', '', "
                         "1, '{}')", [()] * audit_module.KEEP)
    for _ in range(audit_module.PRUNE_EVERY):
        log.record(actor="alice", action="test.new")
    conn2 = sqlite3.connect(ready.paths.root / "stackhub.db")
    try:
        count, newest_kept = conn2.execute(
            "SELECT COUNT(*), SUM(action = 'test.new') FROM audit").fetchone()
    finally:
        conn2.close()
    # pruned every PRUNE_EVERY events down to the newest KEEP: never far above it
    assert audit_module.KEEP <= count < audit_module.KEEP + audit_module.PRUNE_EVERY, count
    assert newest_kept == audit_module.PRUNE_EVERY  # the newest are the ones kept


def test_removing_an_instance_is_audited(ready: Server) -> None:
    compose = "services:\n  web:\n    image: stackhub-test/web:1\n    ports: ['18098:80']\n"
    installed = ready.client.post("/api/instances", headers=ready.admin_headers(), json={
        "source": {"kind": "compose", "compose": compose}, "name": "gone-soon"})
    assert installed.status_code == 202, installed.text
    deadline = time.monotonic() + 10
    while ready.client.get("/api/instances/gone-soon",
                           headers=ready.admin_headers()).json()["status"] == "installing":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    removed = ready.client.delete("/api/instances/gone-soon", headers=ready.admin_headers())
    assert removed.status_code == 202, removed.text
    deadline = time.monotonic() + 10
    while True:
        entries = ready.client.get("/api/audit", headers=ready.admin_headers()).json()
        hits = [e for e in entries if e["action"] == "instance.remove"]
        if hits:
            break
        assert time.monotonic() < deadline, entries[:5]
        time.sleep(0.05)
    assert hits[0]["target"] == "gone-soon" and hits[0]["actor"] == "local-admin", hits[0]
