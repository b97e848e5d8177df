"""Websockets: Origin checked before accept, auth at upgrade, closed at logout, grants per topic."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from .conftest import ADMIN, MEMBER, ORIGIN, Server, bearer, csrf

EVIL = "https://evil.example"


def test_foreign_origin_is_refused_before_accepting(ready: Server) -> None:
    """Cross-site websocket hijacking (aaPanel): the victim's cookie is never even looked at."""
    victim = ready.signed_in(*ADMIN)
    for origin in (EVIL, "null", "http://testserver.evil.example", "file://"):
        with pytest.raises(WebSocketDisconnect) as caught, \
                victim.websocket_connect("/api/ws", headers={"Origin": origin}):
            pass
        assert caught.value.code == 1008


def test_cookie_session_from_our_origin_is_accepted(ready: Server) -> None:
    """The console (same origin, session cookie) is authenticated at upgrade."""
    client = ready.signed_in(*ADMIN)
    with client.websocket_connect("/api/ws", headers={"Origin": ORIGIN}) as ws:
        assert ws.receive_json() == {"type": "auth_ok"}
        ws.send_json({"id": 1, "type": "ping"})
        assert ws.receive_json() == {"id": 1, "type": "pong"}


def test_cookie_without_origin_is_not_enough(ready: Server) -> None:
    """Absent Origin means a non-browser client: it must bring a token, not a cookie."""
    client = ready.signed_in(*ADMIN)
    with client.websocket_connect("/api/ws") as ws:
        ws.send_json({"type": "auth", "token": ""})
        answer = ws.receive_json()
        assert answer["type"] == "auth_invalid"


@pytest.mark.parametrize("token", ["", "shk_forged", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0."])
def test_bad_tokens_are_refused(ready: Server, token: str) -> None:
    """Forged tokens fail on the socket as on HTTP."""
    with ready.new_client().websocket_connect("/api/ws", headers=bearer(token)) as ws:
        assert ws.receive_json()["type"] == "auth_invalid"
    with ready.new_client().websocket_connect("/api/ws") as ws:
        ws.send_json({"type": "auth", "token": token})
        assert ws.receive_json()["type"] == "auth_invalid"


def test_tokens_work_by_header_and_by_first_message(ready: Server) -> None:
    """CLI (header) and older clients (first message) keep working."""
    with ready.new_client().websocket_connect("/api/ws", headers=ready.admin_headers()) as ws:
        assert ws.receive_json() == {"type": "auth_ok"}
    with ready.new_client().websocket_connect("/api/ws") as ws:
        ws.send_json({"type": "auth", "token": ready.admin_token})
        assert ws.receive_json() == {"type": "auth_ok"}


def test_logout_closes_the_sessions_sockets(ready: Server) -> None:
    """Sockets opened with a session close when it ends (Umbrel kept them open)."""
    client = ready.signed_in(*ADMIN)
    other = ready.signed_in(*ADMIN)
    with client.websocket_connect("/api/ws", headers={"Origin": ORIGIN}) as mine, \
            other.websocket_connect("/api/ws", headers={"Origin": ORIGIN}) as theirs:
        assert mine.receive_json()["type"] == "auth_ok"
        assert theirs.receive_json()["type"] == "auth_ok"
        assert client.post("/api/auth/logout", headers=csrf(client)).status_code == 204
        with pytest.raises(WebSocketDisconnect) as caught:
            mine.receive_json()
        assert caught.value.code == 4401
        theirs.send_json({"id": 7, "type": "ping"})
        assert theirs.receive_json() == {"id": 7, "type": "pong"}


def test_revoking_a_token_closes_its_sockets(ready: Server) -> None:
    """A revoked token's socket closes too."""
    session = ready.signed_in(*MEMBER)
    token = ready.user_token(session)
    token_id = session.get("/api/tokens").json()[0]["id"]
    with ready.new_client().websocket_connect("/api/ws", headers=bearer(token)) as ws:
        assert ws.receive_json()["type"] == "auth_ok"
        assert session.delete(f"/api/tokens/{token_id}", headers=csrf(session)).status_code == 204
        with pytest.raises(WebSocketDisconnect):
            ws.receive_json()


def _install(server: Server, name: str) -> None:
    port = 18000 + len(name)
    compose = f"services:\n  web:\n    image: stackhub-test/web:1\n    ports: ['{port}:80']\n"
    answer = server.client.post("/api/instances", headers=server.admin_headers(), json={
        "source": {"kind": "compose", "compose": compose}, "name": name})
    assert answer.status_code == 202, answer.text


def _subscribe(ws: Any, msg_id: int, topic: str, key: str | None) -> dict[str, Any]:
    ws.send_json({"id": msg_id, "type": "subscribe", "topic": topic, "key": key})
    answer: dict[str, Any] = ws.receive_json()
    return answer


def test_members_subscribe_only_to_granted_instances(ready: Server) -> None:
    """Per-subscription checks: other instances, all instances and host metrics are refused."""
    _install(ready, "mine")
    _install(ready, "secret-app")
    answer = ready.client.put("/api/users/bob/instances", json={"instances": ["mine"]},
                              headers=ready.admin_headers())
    assert answer.status_code == 200
    token = ready.user_token(ready.signed_in(*MEMBER))
    with TestClient(ready.app).websocket_connect("/api/ws", headers=bearer(token)) as ws:
        assert ws.receive_json()["type"] == "auth_ok"
        refused = [_subscribe(ws, 1, "instance", "secret-app"),
                   _subscribe(ws, 2, "operation", None),
                   _subscribe(ws, 3, "metrics", None)]
        for item in refused:
            assert item["success"] is False
            assert item["error"]["code"] in ("forbidden", "not_found")
        assert _subscribe(ws, 4, "instance", "mine")["success"] is True


def test_a_socket_closes_when_its_session_expires_quietly(ready: Server,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A receive-only socket does not outlive its session's expiry."""
    from stackhub.api import sockets as ws_module

    monkeypatch.setattr(ws_module, "RECHECK_EVERY", 0.05)
    client = ready.signed_in(*ADMIN)
    with client.websocket_connect("/api/ws", headers={"Origin": ORIGIN}) as socket:
        assert socket.receive_json() == {"type": "auth_ok"}
        with ready.services.db.transaction() as conn:  # expire it behind the socket's back
            conn.execute("UPDATE sessions SET expires_at = '2000-01-01T00:00:00+00:00'")
        answer = socket.receive_json()
        assert answer["type"] == "auth_invalid"
        with pytest.raises(WebSocketDisconnect) as caught:
            socket.receive_json()
        assert caught.value.code == 4401
