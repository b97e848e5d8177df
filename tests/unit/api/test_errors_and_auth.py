"""The API denies by default, and maps the error tree to status codes and one JSON body."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import WebSocketRoute

from stackhub import errors
from stackhub.adapters.fakes import FakeCompose
from stackhub.api import errors as api_errors
from stackhub.api.app import create_app
from stackhub.api.deps import PUBLIC_ROUTES
from stackhub.services import Services

from ..support import IMAGE, api_body, app_request, compose_request
from ..test_yamlsafe import BILLION_LAUGHS

# Routes that must answer without credentials: the one list the server uses (api/deps.py);
# every other /api route needs them. The schema and docs are not among them (signed in only).
PUBLIC = set(PUBLIC_ROUTES)
NEVER_PUBLIC = {("GET", "/api/openapi.json"), ("GET", "/api/docs"), ("GET", "/api/users"),
                ("GET", "/api/instances"), ("POST", "/api/instances"), ("GET", "/api/audit")}


def http_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Return (method, full path) of every HTTP route, routers included (lazily or not)."""
    walker = getattr(fastapi.routing, "iter_route_contexts", None)
    found: set[tuple[str, str]] = set()
    for item in (walker(app.routes) if walker is not None else app.routes):
        original = getattr(item, "original_route", item)
        if isinstance(original, WebSocketRoute):
            continue
        for method in getattr(item, "methods", None) or ():
            if method != "HEAD":
                found.add((method, str(getattr(item, "path", ""))))
    return sorted(found)


def fill(path: str) -> str:
    return re.sub(r"\{([^}:]+)(:[^}]*)?\}",
                  lambda m: "blog" if m.group(1) == "name" else "x", path)


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    app = create_app(services.paths, services=services, public_host="host.test")
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def token(services: Services) -> str:
    return services.paths.admin_token.read_text().strip()


@pytest.fixture
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


# -- deny by default ---------------------------------------------------------------------------

def test_route_walk_sees_the_api(client: TestClient) -> None:
    routes = http_routes(client.app)  # type: ignore[arg-type]
    for expected in [("GET", "/api/instances"), ("POST", "/api/instances"),
                     ("DELETE", "/api/instances/{name}"), ("POST", "/api/plans"),
                     ("GET", "/api/operations/{op_id}"), ("GET", "/api/health")]:
        assert expected in routes


def test_the_schema_and_other_private_routes_are_not_public(client: TestClient) -> None:
    assert not PUBLIC & NEVER_PUBLIC
    for method, path in NEVER_PUBLIC - {("GET", "/api/docs")}:
        assert client.request(method, path).status_code == 401, (method, path)
    assert client.get("/api/docs").status_code in (401, 404)  # no Swagger page at all


def test_every_api_route_but_the_public_ones_needs_a_token(client: TestClient) -> None:
    checked = 0
    for method, path in http_routes(client.app):  # type: ignore[arg-type]
        if not path.startswith("/api") or (method, path) in PUBLIC:
            continue
        for headers in ({}, {"Authorization": "Bearer shk_wrong"},
                        {"Authorization": "Basic YWRtaW46YWRtaW4="}):
            response = client.request(method, fill(path), headers=headers)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert error_of(response)["code"] == "unauthorized"
            assert response.headers.get("www-authenticate") == "Bearer"
        checked += 1
    assert checked >= 10


def test_health_is_public(client: TestClient) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_a_valid_token_is_accepted(client: TestClient, auth: dict[str, str]) -> None:
    assert client.get("/api/instances", headers=auth).json() == []


def test_websocket_refuses_bad_tokens(client: TestClient) -> None:
    with client.websocket_connect("/api/ws", headers={"Authorization": "Bearer nope"}) as ws:
        message = ws.receive_json()
    assert message["type"] == "auth_invalid" and message["error"]["code"] == "unauthorized"
    with client.websocket_connect("/api/ws") as ws:
        ws.send_json({"type": "auth", "token": "nope"})
        assert ws.receive_json()["type"] == "auth_invalid"


def test_websocket_protocol(client: TestClient, auth: dict[str, str]) -> None:
    with client.websocket_connect("/api/ws", headers=auth) as ws:
        assert ws.receive_json() == {"type": "auth_ok"}
        ws.send_json({"id": 1, "type": "ping"})
        assert ws.receive_json() == {"id": 1, "type": "pong"}
        ws.send_json({"type": "ping"})
        reply = ws.receive_json()
        assert reply["success"] is False and reply["error"]["code"] == "invalid"
        ws.send_json({"id": 2, "type": "subscribe", "topic": "nope"})
        reply = ws.receive_json()
        assert (reply["id"], reply["success"], reply["error"]["code"]) == (2, False, "invalid")
        ws.send_json({"id": 3, "type": "launch-missiles"})
        assert ws.receive_json()["error"]["code"] == "invalid"
        ws.send_json({"id": 4, "type": "subscribe", "topic": "operation", "key": "blog"})
        assert ws.receive_json() == {"id": 4, "type": "result", "success": True, "result": None}


def test_websocket_streams_install_events(client: TestClient, auth: dict[str, str]) -> None:
    with client.websocket_connect("/api/ws", headers=auth) as ws:
        assert ws.receive_json()["type"] == "auth_ok"
        ws.send_json({"id": 7, "type": "subscribe", "topic": "operation", "key": "blog"})
        assert ws.receive_json()["success"] is True
        accepted = client.post("/api/instances", json=api_body(app_request()), headers=auth)
        assert accepted.status_code == 202
        kinds = []
        for _ in range(50):
            message = ws.receive_json()
            assert message["id"] == 7 and message["type"] == "event"
            kinds.append(message["event"]["kind"])
            if message["event"]["kind"] == "finished":
                break
        assert kinds[0] == "step" and kinds[-1] == "finished"
        assert message["event"]["data"]["state"] == "succeeded"


def test_operation_events_stream_as_json_lines(client: TestClient, auth: dict[str, str]) -> None:
    accepted = client.post("/api/instances", json=api_body(app_request()), headers=auth)
    assert accepted.status_code == 202
    op_id = accepted.json()["operation"]["id"]
    with client.stream("GET", f"/api/operations/{op_id}/events", headers=auth) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert lines[0]["kind"] == "state" and lines[0]["data"]["operation"] == op_id
    assert lines[-1]["kind"] == "result"
    final = lines[-1]["data"]
    assert (final["operation"]["id"], final["operation"]["state"]) == (op_id, "succeeded")
    assert (final["instance"]["name"], final["instance"]["status"]) == ("blog", "running")


def test_operation_events_of_an_unknown_operation_is_404(client: TestClient,
                                                         auth: dict[str, str]) -> None:
    response = client.get("/api/operations/nope/events", headers=auth)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_schema_documents_error_answers(services: Services) -> None:
    spec = create_app(services.paths, services=services).openapi()
    assert spec["components"]["schemas"]["ErrorBody"]["required"] == ["error"]
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            answers = operation["responses"]
            if (method.upper(), path) in PUBLIC:
                continue
            assert {"401", "403"} <= set(answers), f"{method} {path} lacks 401/403"
            assert answers["401"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"}
    for path in ("/api/auth/login", "/api/auth/totp", "/api/auth/setup"):
        assert "429" in spec["paths"][path]["post"]["responses"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]


# -- error mapping ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("error", "status"), [
    (errors.NotFound, 404), (errors.AlreadyExists, 409), (errors.Conflict, 409),
    (errors.TooLarge, 413), (errors.Invalid, 422), (errors.Unauthorized, 401),
    (errors.Forbidden, 403), (errors.RiskNotAccepted, 428), (errors.EngineUnavailable, 503),
    (errors.EngineError, 502), (errors.ImagePullFailed, 502), (errors.StoreError, 502),
    (errors.StorageFull, 507),
    (errors.StackHubError, 500),
])
def test_status_of_every_error(error: type[errors.StackHubError], status: int) -> None:
    assert api_errors.status_of(error("x")) == status


def test_error_codes_are_distinct() -> None:
    classes = [errors.NotFound, errors.AlreadyExists, errors.Conflict, errors.Invalid,
               errors.TooLarge, errors.Unauthorized, errors.Forbidden, errors.RiskNotAccepted,
               errors.EngineUnavailable, errors.EngineError, errors.ImagePullFailed,
               errors.StoreError]
    assert len({c.code for c in classes}) == len(classes)


def wait_op(client: TestClient, auth: dict[str, str], op_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        op = client.get(f"/api/operations/{op_id}", headers=auth).json()
        if op["state"] != "running":
            return dict(op)
        time.sleep(0.01)
    raise AssertionError("operation did not finish")


def test_404_not_found(client: TestClient, auth: dict[str, str]) -> None:
    response = client.get("/api/instances/nope", headers=auth)
    assert response.status_code == 404
    assert error_of(response) == {"code": "not_found", "message": "no instance named 'nope'",
                                  "details": {}}
    assert client.get("/api/operations/123", headers=auth).status_code == 404


def test_409_already_exists_and_conflict(client: TestClient, auth: dict[str, str]) -> None:
    first = client.post("/api/instances", json=api_body(app_request()), headers=auth)
    assert first.status_code == 202
    assert wait_op(client, auth, first.json()["operation"]["id"])["state"] == "succeeded"
    again = client.post("/api/instances", json=api_body(app_request()), headers=auth)
    assert again.status_code == 409 and error_of(again)["code"] == "already_exists"
    clash = client.post("/api/plans", json=api_body(app_request(
        name="other", values={"WEB_PORT": "18080"})), headers=auth)
    assert clash.status_code == 409
    assert error_of(clash) == {"code": "conflict", "details": {"port": 18080,
                                                               "parameter": "WEB_PORT"},
                               "message": error_of(clash)["message"]}
    assert "by instance blog" in error_of(clash)["message"]


def test_413_too_large(client: TestClient, auth: dict[str, str]) -> None:
    for text in (BILLION_LAUGHS, "[" * 500 + "]" * 500):
        response = client.post("/api/plans", json=api_body(compose_request(text)), headers=auth)
        assert response.status_code == 413
        assert error_of(response)["code"] == "too_large"


def test_422_invalid(client: TestClient, auth: dict[str, str]) -> None:
    response = client.get("/api/instances/Bad%20Name", headers=auth)
    assert response.status_code == 422
    assert "is not allowed" in error_of(response)["message"]
    response = client.post("/api/plans", json={}, headers=auth)
    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid" and "source" in error_of(response)["message"]
    response = client.post("/api/plans", json=api_body(compose_request("services: [")),
                           headers=auth)
    assert response.status_code == 422
    assert "not valid YAML at line" in error_of(response)["message"]
    response = client.post("/api/plans", json=api_body(app_request(values={"NOPE": "1"})),
                           headers=auth)
    assert response.status_code == 422 and "unknown parameter" in error_of(response)["message"]


def test_428_risk_not_accepted(client: TestClient, auth: dict[str, str],
                               services: Services) -> None:
    text = f"services:\n  web:\n    image: {IMAGE}\n    network_mode: host\n"
    response = client.post("/api/instances", json=api_body(compose_request(text)), headers=auth)
    assert response.status_code == 428
    err = error_of(response)
    assert err["code"] == "risk_not_accepted"
    assert err["details"]["digest"].startswith("sha256:")
    assert err["details"]["risks"][0]["code"] == "host_network_mode"
    assert services.records.all() == []
    accepted = client.post("/api/instances", json=api_body(compose_request(
        text, accept=err["details"]["digest"])), headers=auth)
    assert accepted.status_code == 202


def test_503_engine_unavailable(client: TestClient, auth: dict[str, str],
                                compose: FakeCompose) -> None:
    compose.fail("config", errors.EngineUnavailable("Docker Compose v2 is not installed"))
    response = client.post("/api/plans", json=api_body(app_request()), headers=auth)
    assert response.status_code == 503
    assert error_of(response) == {"code": "engine_unavailable", "details": {},
                                  "message": "Docker Compose v2 is not installed"}


def test_lifecycle_errors_map_through(client: TestClient, auth: dict[str, str],
                                      compose: FakeCompose) -> None:
    op = client.post("/api/instances", json=api_body(app_request()), headers=auth).json()
    wait_op(client, auth, op["operation"]["id"])
    compose.fail("stop", errors.EngineUnavailable("stop the app: engine not reachable"))
    assert client.post("/api/instances/blog/stop", headers=auth).status_code == 503
    compose.fail("stop", errors.EngineError("stop the app failed: boom"))
    response = client.post("/api/instances/blog/stop", headers=auth)
    assert response.status_code == 502 and error_of(response)["code"] == "engine_error"
    stopped = client.post("/api/instances/blog/stop", headers=auth)
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"


def test_remove_while_installing_is_409(client: TestClient, auth: dict[str, str],
                                        compose: FakeCompose) -> None:
    gate = compose.hold("up")
    op = client.post("/api/instances", json=api_body(app_request()), headers=auth).json()
    response = client.delete("/api/instances/blog", headers=auth)
    assert response.status_code == 409 and error_of(response)["code"] == "conflict"
    gate.set()
    assert wait_op(client, auth, op["operation"]["id"])["state"] == "succeeded"
    removed = client.delete("/api/instances/blog", params={"purge": True}, headers=auth)
    assert removed.status_code == 202
    assert wait_op(client, auth, removed.json()["operation"]["id"])["state"] == "succeeded"
    assert client.get("/api/instances/blog", headers=auth).status_code == 404
