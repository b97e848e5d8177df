"""Live progress: pull events with percentages and the final event reach websocket clients."""

from __future__ import annotations

import json

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.integration.conftest import Server, docker

pytestmark = pytest.mark.integration
IMAGE = "127.0.0.1:5000/stackhub-test/web:2"


def test_websocket_streams_pull_progress_and_result(server: Server) -> None:
    docker("rmi", IMAGE, check=False)
    with connect(f"ws://127.0.0.1:{server.port}/api/ws",
                 additional_headers={"Authorization": f"Bearer {server.token}"}) as ws:
        events, op_id = _install_and_collect(server, ws)
    check_events(events, op_id)


def _install_and_collect(server: Server, ws: ClientConnection) -> tuple[list[dict], str]:  # type: ignore[type-arg]
    assert json.loads(ws.recv(timeout=5))["type"] == "auth_ok"
    ws.send(json.dumps({"id": 7, "type": "subscribe", "topic": "operation", "key": "t-progress"}))
    assert json.loads(ws.recv(timeout=5)) == {"id": 7, "type": "result", "success": True,
                                              "result": None}
    compose = f"services:\n  web:\n    image: {IMAGE}\n    stop_grace_period: 1s\n"
    response = server.api("POST", "/api/instances", json={
        "source": {"kind": "compose", "compose": compose}, "name": "t-progress"})
    assert response.status_code == 202
    events = []
    while True:
        message = json.loads(ws.recv(timeout=60))
        assert message["id"] == 7 and message["type"] == "event"
        events.append(message["event"])
        if message["event"]["kind"] == "finished":
            break
    return events, response.json()["operation"]["id"]


def check_events(events: list[dict], op_id: str) -> None:  # type: ignore[type-arg]
    kinds = [e["kind"] for e in events]
    pulls = [e["data"] for e in events if e["kind"] == "pull"]
    assert pulls and pulls[-1]["percent"] == 100.0 and pulls[-1]["image"] == IMAGE
    percents = [p["percent"] for p in pulls]
    assert percents == sorted(percents), "pull progress never goes backwards"
    steps = [e["data"]["step"] for e in events if e["kind"] == "step"]
    distinct = [s for i, s in enumerate(steps) if i == 0 or s != steps[i - 1]]
    assert distinct == ["pull", "start", "wait", "verify"]
    assert kinds.index("pull") < kinds.index("finished")
    assert events[-1]["data"]["state"] == "succeeded"
    assert {e["data"]["operation"] for e in events} == {op_id}


def test_cli_shows_a_progress_bar_while_pulling(server: Server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    docker("rmi", IMAGE, check=False)
    compose = tmp_path / "c.yaml"
    compose.write_text(f"services:\n  web:\n    image: {IMAGE}\n    stop_grace_period: 1s\n")
    result = server.cli("app", "install", str(compose), "--name", "t-bar", "--yes")
    assert result.returncode == 0, result.stderr
    assert f"pull {IMAGE}" in result.stderr and "100%" in result.stderr


def test_websocket_rejects_bad_requests(server: Server) -> None:
    with connect(f"ws://127.0.0.1:{server.port}/api/ws",
                 additional_headers={"Authorization": f"Bearer {server.token}"}) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "auth_ok"
        ws.send(json.dumps({"id": 1, "type": "subscribe", "topic": "nope"}))
        reply = json.loads(ws.recv(timeout=5))
        assert reply["success"] is False and reply["error"]["code"] == "invalid"
        ws.send(json.dumps({"type": "ping"}))
        reply = json.loads(ws.recv(timeout=5))
        assert reply["success"] is False and "integer id" in reply["error"]["message"]
