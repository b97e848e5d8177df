"""The API and the CLI while the engine is down: health says so, list warns, actions get 503."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from stackhub.adapters.fakes import FakeEngine
from stackhub.api.app import create_app
from stackhub.cli import apps as cli_apps
from stackhub.cli.client import Client
from stackhub.cli.main import cli
from stackhub.services import Services

from ..support import COMPOSE, MANIFEST, AsgiTransport

runner = CliRunner()


@pytest.fixture
def api(services: Services, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """An in-process API on the fakes (the status cache follows the fake engine)."""
    monkeypatch.chdir(tmp_path)
    token = services.paths.admin_token.read_text().strip()
    app = create_app(services.paths, services=services, public_host="host.test")
    with TestClient(app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {token}"

        def make_client(*args: Any, **kwargs: Any) -> Client:
            return Client(url="http://testserver", token=token,
                          transport=AsgiTransport(test_client))

        monkeypatch.setattr(cli_apps, "Client", make_client)
        yield test_client


def wait_health(client: TestClient, engine: bool, within: float = 2.0) -> dict[str, Any]:
    """Poll /api/health until `engine` is as wanted; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        health: dict[str, Any] = client.get("/api/health").json()
        if health["engine"] is engine:
            return health
        assert time.monotonic() < deadline, health
        time.sleep(0.02)


def test_health_list_and_actions_through_an_outage(api: TestClient, tmp_path: Path,
                                                   engine: FakeEngine) -> None:
    app = tmp_path / "blog"
    app.mkdir()
    (app / "stackhub-app.yaml").write_text(MANIFEST)
    (app / "compose.yaml").write_text(COMPOSE)
    assert runner.invoke(cli, ["app", "install", str(app), "--yes"]).exit_code == 0
    up = wait_health(api, True)
    assert up["engine_error"] is None and up["engine_since"]
    fine = runner.invoke(cli, ["app", "list"])
    assert "Warning" not in fine.stderr and "running" in fine.stdout

    engine.available = False
    down = wait_health(api, False)
    assert "not reachable" in down["engine_error"] and down["engine_since"]
    table = runner.invoke(cli, ["app", "list"])
    assert table.exit_code == 0
    assert "Warning: the Docker engine is unreachable since" in " ".join(table.stderr.split())
    assert "unknown (engine" in table.stdout and "unreachable)" in table.stdout  # wrapped
    as_json = runner.invoke(cli, ["app", "list", "--json"])
    assert as_json.exit_code == 0 and "Warning" in as_json.stderr
    items = json.loads(as_json.stdout)  # stdout stays valid JSON
    assert (items[0]["status"], items[0]["status_reason"]) == ("unknown", "engine unreachable")
    ops = api.get("/api/operations", params={"instance": "blog"}).json()["total"]
    answer = api.post("/api/instances/blog/stop")
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "engine_unavailable"
    assert "engine is not reachable" in answer.json()["error"]["message"]
    assert api.get("/api/operations", params={"instance": "blog"}).json()["total"] == ops

    engine.available = True
    back = wait_health(api, True)
    assert back["engine_error"] is None
    assert api.get("/api/instances/blog").json()["status"] == "running"
    again = runner.invoke(cli, ["app", "list"])
    assert "Warning" not in again.stderr
