"""The engine topic: any signed-in user may follow the engine's state; no key, no instance data."""

from __future__ import annotations

from typing import Any

from .conftest import MEMBER, Server, bearer


def _subscribe(ws: Any, msg_id: int, topic: str, key: str | None = None) -> dict[str, Any]:
    ws.send_json({"id": msg_id, "type": "subscribe", "topic": topic, "key": key})
    answer: dict[str, Any] = ws.receive_json()
    return answer


def test_members_follow_engine_down_and_up(ready: Server) -> None:
    token = ready.user_token(ready.signed_in(*MEMBER))
    # the started client: its event loop is the one the bus publishes on
    with ready.client.websocket_connect("/api/ws", headers=bearer(token)) as ws:
        assert ws.receive_json()["type"] == "auth_ok"
        assert _subscribe(ws, 1, "engine")["success"] is True
        assert _subscribe(ws, 2, "metrics")["success"] is False  # still admin-only
        ready.engine.available = False
        down = ws.receive_json()
        assert (down["id"], down["event"]["topic"], down["event"]["kind"]) == (1, "engine", "down")
        assert down["event"]["data"]["engine"] is False
        assert "not reachable" in down["event"]["data"]["error"]
        ready.engine.available = True
        up = ws.receive_json()
        assert (up["event"]["kind"], up["event"]["data"]["engine"]) == ("up", True)
        assert set(up["event"]["data"]) == {"engine", "error", "since"}
