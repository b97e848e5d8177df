"""Every websocket route refuses a foreign Origin before accepting, and bad or ended credentials.

The routes come from the live route table, so a websocket route added later is covered without
touching this file: it must open its socket through ``api/sockets.py: guarded_socket`` or fail
here. Path parameters are filled with PROBE. The second half exercises the guard's options
(admin-only, a route's own check, 2FA enrolment, the re-checks) on a probe route.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi import FastAPI, WebSocket
from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import WebSocketRoute
from starlette.testclient import WebSocketTestSession
from starlette.types import Message
from starlette.websockets import WebSocketDisconnect

from stackhub.api import sockets
from stackhub.api.app import create_app
from stackhub.api.sockets import guarded_socket
from stackhub.auth.models import Principal
from stackhub.config import Paths
from stackhub.errors import NotFound

from .conftest import ADMIN, MEMBER, ORIGIN, Server, bearer, csrf

PROBE = "probe"
WAIT = 10.0
FOREIGN = ["https://evil.example", "null", "http://testserver.evil.example", "file://",
           "http://testserver:8080"]


def websocket_paths(app: FastAPI) -> list[str]:
    """Return every websocket route of `app` (routers flattened), path parameters filled."""
    found = {re.sub(r"\{[^}]*\}", PROBE, str(context.path))
             for context in iter_route_contexts(app.routes)
             if isinstance(context.original_route, WebSocketRoute)}
    return sorted(found)


ROUTES = websocket_paths(create_app(Paths(Path("unused-data-root"))))


def test_the_route_table_has_websocket_routes(server: Server) -> None:
    """The walk finds the routes (so the checks below cannot pass by finding none)."""
    assert ROUTES, "no websocket route found: the walk over app.routes is broken"
    assert "/api/ws" in ROUTES
    assert websocket_paths(server.app) == ROUTES


# helpers ------------------------------------------------------------------------------------


def receive_json(ws: WebSocketTestSession, timeout: float = WAIT) -> Any:
    """Receive one JSON message, failing (not hanging) when none comes within `timeout` s."""
    stream = getattr(ws, "_send_rx", None)  # TestClient's own receive waits forever
    if stream is None:
        return ws.receive_json()

    async def receive() -> Message:
        with anyio.fail_after(timeout):
            message: Message = await stream.receive()
            return message

    try:
        message = ws.portal.call(receive)
    except TimeoutError:
        pytest.fail(f"nothing received within {timeout} s: the socket stayed open and quiet")
    if message["type"] == "websocket.close":
        raise WebSocketDisconnect(code=message.get("code", 1000),
                                  reason=message.get("reason", ""))
    return json.loads(message["text"])


def refused(ws: WebSocketTestSession, *, kind: str = "auth_invalid", code: int = 4401,
            error: str = "unauthorized") -> None:
    """Expect the refusal message, then the close code."""
    answer = receive_json(ws)
    assert answer["type"] == kind, answer
    assert answer["error"]["code"] == error, answer
    with pytest.raises(WebSocketDisconnect) as caught:
        receive_json(ws)
    assert caught.value.code == code


def closed(ws: WebSocketTestSession) -> int:
    """Read until the server closes the socket; return the close code."""
    for _ in range(1000):
        try:
            receive_json(ws)
        except WebSocketDisconnect as err:
            return err.code
    pytest.fail("the socket stayed open")


def revocable_token(server: Server) -> tuple[TestClient, str, str]:
    """Return alice's signed-in client, a new API token of hers, and that token's id."""
    session = server.signed_in(*ADMIN)
    token = server.user_token(session, name="socket")
    token_id = next(t["id"] for t in session.get("/api/tokens").json() if t["name"] == "socket")
    return session, token, token_id


def revoke(session: TestClient, token_id: str) -> None:
    """Revoke a token through the API."""
    assert session.delete(f"/api/tokens/{token_id}", headers=csrf(session)).status_code == 204


# every route --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ROUTES)
def test_a_foreign_origin_is_refused_before_accepting(ready: Server, path: str) -> None:
    """Cross-site websocket hijacking: refused at the handshake, whatever credential rides along."""
    victim = ready.signed_in(*ADMIN)
    for origin in FOREIGN:
        for headers in ({"Origin": origin}, {"Origin": origin, **ready.admin_headers()}):
            with pytest.raises(WebSocketDisconnect) as caught, \
                    victim.websocket_connect(path, headers=headers):
                pytest.fail(f"{path} accepted a socket from {origin}")
            assert caught.value.code == 1008, (path, origin)
    assert len(ready.services.auth.sockets) == 0


@pytest.mark.parametrize("path", ROUTES)
def test_no_credential_is_refused(ready: Server, path: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """No token, an empty or malformed one, or a cookie without Origin: auth_invalid and 4401."""
    anonymous = ready.new_client()
    with anonymous.websocket_connect(path) as ws:
        ws.send_json({"id": 1, "type": "ping"})  # anything but an auth message
        refused(ws)
    with anonymous.websocket_connect(path) as ws:
        ws.send_json({"type": "auth", "token": ""})
        refused(ws)
    for header in ("Basic YWxpY2U6cHc=", "Bearer", "Bearer shk_forged"):
        with anonymous.websocket_connect(path, headers={"Authorization": header}) as ws:
            refused(ws)
    browser = ready.signed_in(*ADMIN)  # the cookie counts only with an Origin (browsers)
    with browser.websocket_connect(path) as ws:
        ws.send_json({"id": 1, "type": "ping"})
        refused(ws)
    monkeypatch.setattr(sockets, "AUTH_TIMEOUT", 0.05)
    with anonymous.websocket_connect(path, headers={"Origin": ORIGIN}) as ws:
        refused(ws)  # sent nothing in time
    assert len(ready.services.auth.sockets) == 0


@pytest.mark.parametrize("path", ROUTES)
def test_a_revoked_token_is_refused(ready: Server, path: str) -> None:
    """A revoked API token fails by header and by first message."""
    session, token, token_id = revocable_token(ready)
    revoke(session, token_id)
    with ready.new_client().websocket_connect(path, headers=bearer(token)) as ws:
        refused(ws)
    with ready.new_client().websocket_connect(path) as ws:
        ws.send_json({"type": "auth", "token": token})
        refused(ws)


@pytest.mark.parametrize("path", ROUTES)
def test_a_logged_out_session_is_refused(ready: Server, path: str) -> None:
    """A session cookie kept after logout opens nothing."""
    client = ready.signed_in(*ADMIN)
    cookie = client.cookies.get("stackhub_session")
    assert cookie
    assert client.post("/api/auth/logout", headers=csrf(client)).status_code == 204
    headers = {"Origin": ORIGIN, "Cookie": f"stackhub_session={cookie}"}
    with ready.new_client().websocket_connect(path, headers=headers) as ws:
        ws.send_json({"id": 1, "type": "ping"})  # not a credential either
        refused(ws)


@pytest.mark.parametrize("path", ROUTES)
def test_valid_credentials_are_accepted(ready: Server, path: str) -> None:
    """Each way of signing in opens the socket (the refusals above are not vacuous)."""
    session, token, _ = revocable_token(ready)
    ways: list[tuple[TestClient, dict[str, str], dict[str, Any] | None]] = [
        (ready.new_client(), bearer(token), None),
        (ready.new_client(), ready.admin_headers(), None),
        (ready.new_client(), {}, {"type": "auth", "token": token}),
        (session, {"Origin": ORIGIN}, None),
    ]
    for client, headers, first in ways:
        with client.websocket_connect(path, headers=headers) as ws:
            if first is not None:
                ws.send_json(first)
            assert receive_json(ws) == {"type": "auth_ok"}, (path, headers, first)
            assert len(ready.services.auth.sockets) == 1
        assert len(ready.services.auth.sockets) == 0  # forgotten once closed


@pytest.mark.parametrize("path", ROUTES)
def test_an_open_socket_closes_when_its_token_is_revoked(ready: Server, path: str) -> None:
    """Revocation reaches sockets already open."""
    session, token, token_id = revocable_token(ready)
    with ready.new_client().websocket_connect(path, headers=bearer(token)) as ws:
        assert receive_json(ws) == {"type": "auth_ok"}
        revoke(session, token_id)
        assert closed(ws) == 4401


@pytest.mark.parametrize("path", ROUTES)
def test_an_open_socket_closes_at_logout(ready: Server, path: str) -> None:
    """Logout reaches sockets opened with the session."""
    client = ready.signed_in(*ADMIN)
    with client.websocket_connect(path, headers={"Origin": ORIGIN}) as ws:
        assert receive_json(ws) == {"type": "auth_ok"}
        assert client.post("/api/auth/logout", headers=csrf(client)).status_code == 204
        assert closed(ws) == 4401


# the guard's options, on a probe route ------------------------------------------------------

ADMIN_PROBE = "/probe/admin"
CHECKED_PROBE = "/probe/checked"
CAROL = ("carol", "carol-has-a-long-password")


def hidden_from_bob(principal: Principal) -> None:
    """A route's own rule: bob may not see this (as for an instance not granted to him)."""
    if principal.name == MEMBER[0]:
        raise NotFound("no instance named 'probe'")


async def echo(ws: WebSocket, *, require_admin: bool) -> None:
    """Echo messages, re-checking access before each one."""
    check = None if require_admin else hidden_from_bob
    async with guarded_socket(ws, require_admin=require_admin, check=check) as session:
        if session is None:
            return
        while True:
            message = await ws.receive_json()
            if not await session.ensure_allowed():
                return
            await ws.send_json({"echo": message, "user": session.principal.name,
                                "allowed": session.still_allowed()})


async def admin_probe(ws: WebSocket) -> None:
    """An admin-only socket, as the coming terminals."""
    await echo(ws, require_admin=True)


async def checked_probe(ws: WebSocket) -> None:
    """A socket with its own rule on the caller."""
    await echo(ws, require_admin=False)


@pytest.fixture
def probed(ready: Server) -> Iterator[Server]:
    """The ready app with the probe routes first (before the console's catch-all mount)."""
    ready.app.router.routes[:0] = [APIWebSocketRoute(ADMIN_PROBE, admin_probe),
                                   APIWebSocketRoute(CHECKED_PROBE, checked_probe)]
    ready.create_user(*CAROL, role="admin")
    yield ready


def carol_token(server: Server) -> str:
    """Return an API token of carol (an admin who can be demoted)."""
    return server.user_token(server.signed_in(*CAROL))


def demote_behind_its_back(server: Server, name: str) -> None:
    """Change a role in the database without telling the open sockets."""
    with server.services.db.transaction() as conn:
        conn.execute("UPDATE users SET role = 'member' WHERE name = ?", (name,))


def test_a_member_is_refused_an_admin_only_socket(probed: Server) -> None:
    """Members get a clear refusal and 4403; admins get in."""
    member = probed.user_token(probed.signed_in(*MEMBER))
    with probed.new_client().websocket_connect(ADMIN_PROBE, headers=bearer(member)) as ws:
        refused(ws, kind="auth_forbidden", code=4403, error="forbidden")
    with probed.signed_in(*MEMBER).websocket_connect(ADMIN_PROBE,
                                                     headers={"Origin": ORIGIN}) as ws:
        refused(ws, kind="auth_forbidden", code=4403, error="forbidden")
    with probed.new_client().websocket_connect(ADMIN_PROBE,
                                               headers=bearer(carol_token(probed))) as ws:
        assert receive_json(ws) == {"type": "auth_ok"}
        ws.send_json({"id": 1})
        assert receive_json(ws) == {"echo": {"id": 1}, "user": "carol", "allowed": True}
    assert len(probed.services.auth.sockets) == 0


def test_a_routes_own_check_refuses_with_its_error(probed: Server) -> None:
    """A rule raising NotFound refuses with that code (members do not learn what exists)."""
    member = probed.user_token(probed.signed_in(*MEMBER))
    with probed.new_client().websocket_connect(CHECKED_PROBE, headers=bearer(member)) as ws:
        refused(ws, kind="auth_forbidden", code=4403, error="not_found")
    with probed.new_client().websocket_connect(CHECKED_PROBE,
                                               headers=probed.admin_headers()) as ws:
        assert receive_json(ws) == {"type": "auth_ok"}


def test_demoting_an_admin_closes_their_admin_socket(probed: Server) -> None:
    """An account change through the API closes the sockets at once."""
    with probed.new_client().websocket_connect(ADMIN_PROBE,
                                               headers=bearer(carol_token(probed))) as ws:
        assert receive_json(ws) == {"type": "auth_ok"}
        answer = probed.client.patch("/api/users/carol", headers=probed.admin_headers(),
                                     json={"role": "member"})
        assert answer.status_code == 200, answer.text
        assert closed(ws) == 4401


def test_each_request_rechecks_the_role(probed: Server) -> None:
    """A demotion the sockets were not told about is caught at the next request."""
    with probed.new_client().websocket_connect(ADMIN_PROBE,
                                               headers=bearer(carol_token(probed))) as ws:
        assert receive_json(ws) == {"type": "auth_ok"}
        demote_behind_its_back(probed, "carol")
        ws.send_json({"id": 1})
        refused(ws, kind="auth_forbidden", code=4403, error="forbidden")


def test_the_watchdog_rechecks_a_quiet_socket(probed: Server,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A socket that only listens still ends when its role does."""
    monkeypatch.setattr(sockets, "RECHECK_EVERY", 0.05)
    with probed.new_client().websocket_connect(ADMIN_PROBE,
                                               headers=bearer(carol_token(probed))) as ws:
        assert receive_json(ws) == {"type": "auth_ok"}
        demote_behind_its_back(probed, "carol")
        refused(ws, kind="auth_forbidden", code=4403, error="forbidden")


def test_unenrolled_users_are_refused_while_2fa_is_required(probed: Server) -> None:
    """With 2FA required, a user who has not enrolled opens no socket."""
    answer = probed.client.put("/api/settings/security", headers=probed.admin_headers(), json={
        "require_2fa": True, "trusted_proxies": [], "allowed_origins": []})
    assert answer.status_code == 200, answer.text
    client = probed.signed_in(*MEMBER)
    for path in [*ROUTES, CHECKED_PROBE]:
        with client.websocket_connect(path, headers={"Origin": ORIGIN}) as ws:
            refused(ws)
