"""The API and the CLI while the engine is down: health says so, list warns, actions get 503."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from stackhub.adapters.fakes import FakeEngine
from stackhub.cli.main import cli

from ..support import COMPOSE, MANIFEST

runner = CliRunner()



def wait_health(client: TestClient, engine: bool, within: float = 15.0) -> dict[str, Any]:
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
