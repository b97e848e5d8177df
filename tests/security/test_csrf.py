"""Cross-site requests: CSRF token plus Origin for cookie sessions, no wildcard CORS, headers."""

from __future__ import annotations

from fastapi.testclient import TestClient

from .conftest import ADMIN, ORIGIN, Server, bearer

EVIL = "https://evil.example"
NEW_USER = {"username": "eve", "password": "eve-has-a-long-password", "role": "admin"}


def _users(server: Server) -> list[str]:
    return [u.name for u in server.services.auth.users.all()]


def _admin(server: Server) -> tuple[TestClient, str]:
    client = server.signed_in(*ADMIN)
    return client, client.cookies.get("stackhub_csrf") or ""


def test_cross_site_post_without_csrf_token_changes_nothing(ready: Server) -> None:
    """The browser sends the cookie, but the attacker cannot read or send the CSRF token."""
    client, _ = _admin(ready)
    for headers in ({}, {"Origin": ORIGIN}, {"Origin": EVIL}, {"Referer": EVIL + "/x"},
                    {"Content-Type": "text/plain"}):
        response = client.post("/api/users", json=NEW_USER, headers=headers)
        assert response.status_code == 403, headers
        assert response.json()["error"]["code"] == "forbidden"
    assert "eve" not in _users(ready)


def test_right_token_but_foreign_or_missing_origin_is_refused(ready: Server) -> None:
    """Both checks must pass: a leaked token alone is not enough (1Panel CVE-2025-34430)."""
    client, token = _admin(ready)
    for headers in ({"X-CSRF-Token": token, "Origin": EVIL},
                    {"X-CSRF-Token": token, "Origin": "null"},
                    {"X-CSRF-Token": token, "Origin": "http://testserver.evil.example"},
                    {"X-CSRF-Token": token, "Referer": EVIL + "/page"},
                    {"X-CSRF-Token": token}):
        assert client.post("/api/users", json=NEW_USER, headers=headers).status_code == 403
    assert "eve" not in _users(ready)


def test_token_must_match_the_cookie_and_the_session(ready: Server) -> None:
    """A header equal to a cookie the attacker planted is still not this session's token."""
    client, token = _admin(ready)
    wrong = {"X-CSRF-Token": token[:-2] + "xx", "Origin": ORIGIN}
    assert client.post("/api/users", json=NEW_USER, headers=wrong).status_code == 403
    client.cookies.set("stackhub_csrf", "planted-by-attacker")
    planted = {"X-CSRF-Token": "planted-by-attacker", "Origin": ORIGIN}
    assert client.post("/api/users", json=NEW_USER, headers=planted).status_code == 403
    assert "eve" not in _users(ready)


def test_same_origin_console_request_passes(ready: Server) -> None:
    """Token plus our own Origin (or Referer) is what the console sends."""
    client, token = _admin(ready)
    response = client.post("/api/users", json=NEW_USER,
                           headers={"X-CSRF-Token": token, "Referer": ORIGIN + "/users"})
    assert response.status_code == 201
    assert "eve" in _users(ready)


def test_bearer_requests_are_exempt(ready: Server) -> None:
    """Scripts with an API token need no CSRF token (browsers never add the header)."""
    response = ready.new_client().post("/api/users", json=NEW_USER,
                                       headers=ready.admin_headers())
    assert response.status_code == 201


def test_login_from_a_foreign_origin_is_refused(ready: Server) -> None:
    """Login CSRF: a foreign page cannot sign the victim into an attacker's account."""
    client = ready.new_client()
    response = client.post("/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]},
                           headers={"Origin": EVIL})
    assert response.status_code == 403
    assert "stackhub_session" not in client.cookies


def test_no_wildcard_cors(ready: Server) -> None:
    """No Access-Control-Allow-Origin for strangers, never '*' (CasaOS)."""
    client = ready.new_client()
    preflight = client.options("/api/users", headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers
    simple = client.get("/api/health", headers={"Origin": EVIL})
    assert "access-control-allow-origin" not in simple.headers
    assert "access-control-allow-credentials" not in simple.headers


def test_configured_origin_gets_exact_cors(ready: Server) -> None:
    """An admin-configured console origin is echoed exactly, with credentials."""
    other = "https://panel.example.com"
    answer = ready.client.put("/api/settings/security", headers=ready.admin_headers(), json={
        "require_2fa": False, "trusted_proxies": [], "allowed_origins": [other + "/"]})
    assert answer.status_code == 200 and answer.json()["allowed_origins"] == [other]
    preflight = ready.new_client().options("/api/users", headers={
        "Origin": other, "Access-Control-Request-Method": "DELETE"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == other
    assert preflight.headers["access-control-allow-credentials"] == "true"
    client, token = _admin(ready)
    assert client.post("/api/users", json=NEW_USER,
                       headers={"X-CSRF-Token": token, "Origin": other}).status_code == 201


def test_wildcard_origins_cannot_be_configured(ready: Server) -> None:
    """Settings refuse '*' and junk as origins or proxies."""
    for body in ({"allowed_origins": ["*"]}, {"allowed_origins": ["https://*.example.com"]},
                 {"allowed_origins": ["javascript:alert(1)"]}, {"trusted_proxies": ["anywhere"]}):
        answer = ready.client.put("/api/settings/security", headers=ready.admin_headers(),
                                  json=body)
        assert answer.status_code == 422, body


def test_security_headers_on_every_answer(ready: Server) -> None:
    """CSP with frame-ancestors 'none', nosniff, referrer policy; no HSTS over plain HTTP."""
    for path in ("/api/health", "/api/users", "/", "/api/nope"):
        headers = ready.new_client().get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "default-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "same-origin"
        assert "strict-transport-security" not in headers


def test_hsts_and_secure_cookies_under_tls(ready: Server) -> None:
    """Over HTTPS the session cookie is Secure (and HttpOnly, SameSite=Strict) and HSTS is on."""
    client = ready.new_client(base_url="https://testserver")
    answer = client.post("/api/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
    assert answer.status_code == 200
    assert answer.headers["strict-transport-security"].startswith("max-age=")
    cookies = answer.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("stackhub_session="))
    csrf_cookie = next(c for c in cookies if c.startswith("stackhub_csrf="))
    for flag in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert flag in session
    assert "Secure" in csrf_cookie and "HttpOnly" not in csrf_cookie
    plain = ready.new_client().post("/api/auth/login",
                                    json={"username": ADMIN[0], "password": ADMIN[1]})
    assert all("Secure" not in c for c in plain.headers.get_list("set-cookie"))


def test_api_answers_are_not_cached(ready: Server) -> None:
    """Answers carrying tokens or user data are no-store."""
    token = ready.user_token(ready.signed_in(*ADMIN))
    headers = ready.new_client().get("/api/tokens", headers=bearer(token)).headers
    assert headers["cache-control"] == "no-store"
