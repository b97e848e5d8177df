"""Forged, empty, revoked and stale credentials never authenticate."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from stackhub.auth.sessions import digest

from .conftest import ADMIN, MEMBER, ORIGIN, Server, bearer, csrf


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(payload: dict[str, object], *, alg: str = "none", key: bytes = b"") -> str:
    """Build a JWT the way CasaOS/Cosmos attacks did: alg none or an empty/guessed key."""
    head = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = _b64(json.dumps(payload).encode())
    if alg == "none":
        return f"{head}.{body}."
    sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(sig)}"


CLAIMS = {"sub": "alice", "username": "alice", "role": "admin", "id": 1, "exp": 4102444800}
FORGED = [
    jwt(CLAIMS),
    jwt(CLAIMS, alg="HS256", key=b""),
    jwt(CLAIMS, alg="HS256", key=b"secret"),
    jwt(CLAIMS, alg="HS256", key=b"casaos"),
    "shk_" + "A" * 43,
    "sht_" + "A" * 43,
    "shs_" + "A" * 43,
    "admin",
    "null",
    "undefined",
    "sht_",
    "x" * 5000,
]


@pytest.mark.parametrize("token", FORGED)
def test_forged_bearer_tokens_are_refused(ready: Server, token: str) -> None:
    """alg:none, empty/default keys, prefixes only, junk: all 401, nothing learned."""
    response = ready.new_client().get("/api/users", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Basic YWxpY2U6cGFzcw==", "Token x",
                                    "bearer  ", ""])
def test_malformed_authorization_headers_are_refused(ready: Server, header: str) -> None:
    """An empty or non-bearer Authorization header is not 'no header' (and not a pass)."""
    response = ready.new_client().get("/api/users", headers={"Authorization": header})
    assert response.status_code == 401


def test_forged_session_cookies_are_refused(ready: Server) -> None:
    """Cookies are random server-side ids: a JWT or a guessed value is nobody."""
    for value in (jwt(CLAIMS), "shs_" + "A" * 43, "1", ""):
        client = ready.new_client()
        client.cookies.set("stackhub_session", value)
        assert client.get("/api/users").status_code == 401
        assert client.get("/api/auth/status").json()["authenticated"] is False


def test_the_database_holds_only_digests(ready: Server) -> None:
    """A stolen database does not yield usable sessions or tokens."""
    client = ready.signed_in(*ADMIN)
    token = ready.user_token(client)
    cookie = client.cookies.get("stackhub_session") or ""
    dump = "\n".join(ready.services.db.path.parent.joinpath(n).read_bytes().decode(
        "latin-1") for n in ("stackhub.db", "stackhub.db-wal")
        if ready.services.db.path.parent.joinpath(n).exists())
    assert token not in dump and cookie not in dump
    assert ready.services.db.query("SELECT 1 FROM api_tokens WHERE digest = ?", (digest(token),))
    assert ready.services.db.query("SELECT 1 FROM sessions WHERE digest = ?", (digest(cookie),))


def test_revoked_token_stops_working_immediately(ready: Server) -> None:
    """Server-side revocation (Cosmos kept tokens valid)."""
    session = ready.signed_in(*MEMBER)
    token = ready.user_token(session)
    api = ready.new_client()
    assert api.get("/api/tokens", headers=bearer(token)).status_code == 200
    token_id = api.get("/api/tokens", headers=bearer(token)).json()[0]["id"]
    assert api.delete(f"/api/tokens/{token_id}", headers=bearer(token)).status_code == 204
    assert api.get("/api/tokens", headers=bearer(token)).status_code == 401


def test_session_cookie_is_dead_after_logout(ready: Server) -> None:
    """A copied cookie replayed after logout is refused."""
    client = ready.signed_in(*ADMIN)
    stolen = client.cookies.get("stackhub_session") or ""
    stolen_csrf = client.cookies.get("stackhub_csrf") or ""
    assert client.post("/api/auth/logout", headers=csrf(client)).status_code == 204
    thief = ready.new_client()
    thief.cookies.set("stackhub_session", stolen)
    thief.cookies.set("stackhub_csrf", stolen_csrf)
    assert thief.get("/api/users").status_code == 401
    assert thief.post("/api/users", json={"username": "eve", "password": "eve-long-password"},
                      headers={"X-CSRF-Token": stolen_csrf, "Origin": ORIGIN}).status_code == 401


def test_password_change_ends_other_sessions_but_not_this_one(ready: Server) -> None:
    """After a password change, other sessions (a thief's) are revoked."""
    mine = ready.signed_in(*MEMBER)
    theirs = ready.signed_in(*MEMBER)
    response = mine.post("/api/auth/password", headers=csrf(mine),
                         json={"current": MEMBER[1], "new": "a-brand-new-long-password"})
    assert response.status_code == 204
    assert mine.get("/api/auth/sessions").status_code == 200
    assert theirs.get("/api/auth/sessions").status_code == 401
    old = ready.new_client().post("/api/auth/login",
                                  json={"username": MEMBER[0], "password": MEMBER[1]})
    assert old.status_code == 401


def test_disabling_a_user_kills_sessions_and_tokens(ready: Server) -> None:
    """A disabled account's cookie and token stop at once."""
    session = ready.signed_in(*MEMBER)
    token = ready.user_token(session)
    response = ready.client.patch("/api/users/bob", json={"disabled": True},
                                  headers=ready.admin_headers())
    assert response.status_code == 200 and response.json()["disabled"] is True
    assert session.get("/api/auth/sessions").status_code == 401
    assert ready.new_client().get("/api/tokens", headers=bearer(token)).status_code == 401


def test_expired_token_is_refused(ready: Server) -> None:
    """Tokens with an expiry stop working after it."""
    session = ready.signed_in(*MEMBER)
    created = session.post("/api/tokens", json={"name": "short", "expires_days": 1},
                           headers=csrf(session)).json()
    with ready.services.db.transaction() as conn:
        conn.execute("UPDATE api_tokens SET expires_at = '2000-01-01T00:00:00.000+00:00' "
                     "WHERE id = ?", (created["id"],))
    assert ready.new_client().get("/api/tokens",
                                  headers=bearer(created["token"])).status_code == 401


def test_idle_session_expires(ready: Server) -> None:
    """A session unused for longer than the idle limit is gone."""
    session = ready.signed_in(*MEMBER)
    with ready.services.db.transaction() as conn:
        conn.execute("UPDATE sessions SET last_seen = '2000-01-01T00:00:00.000+00:00'")
    assert session.get("/api/auth/sessions").status_code == 401


def test_a_token_is_scoped_to_its_user(ready: Server) -> None:
    """A member cannot list or revoke an admin's tokens, nor act as the admin."""
    admin_token = ready.user_token(ready.signed_in(*ADMIN))
    admin_ids = [t["id"] for t in ready.new_client().get(
        "/api/tokens", headers=bearer(admin_token)).json()]
    member_token = ready.user_token(ready.signed_in(*MEMBER))
    member = ready.new_client()
    listed = [t["id"] for t in member.get("/api/tokens", headers=bearer(member_token)).json()]
    assert not set(listed) & set(admin_ids)
    for token_id in admin_ids:
        assert member.delete(f"/api/tokens/{token_id}",
                             headers=bearer(member_token)).status_code == 404
    assert ready.new_client().get("/api/users", headers=bearer(admin_token)).status_code == 200
