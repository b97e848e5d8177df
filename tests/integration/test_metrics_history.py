"""The metrics history against the real engine: a real server samples a real container from its
cgroup (every second here: STACKHUB_METRICS_INTERVAL=1), and the history, top, CLI and member
rules all see it. One module-scoped server, one install."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Server, docker

pytestmark = pytest.mark.integration
IMAGE = os.environ.get("STACKHUB_TEST_IMAGE", "stackhub-test/web:1")
COMPOSE = f"""services:
  web:
    image: {IMAGE}
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
"""
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("metrics") / "data",
                 extra_env={"STACKHUB_METRICS_INTERVAL": "1"})
    srv.start()
    try:
        yield srv
    finally:
        srv.cleanup_engine()
        srv.stop()


@pytest.fixture(scope="module")
def name(server: Server) -> str:
    name = f"shmetrics{uuid.uuid4().hex[:6]}"
    answer = server.api("POST", "/api/instances", json={
        "source": {"kind": "compose", "compose": COMPOSE}, "name": name})
    assert answer.status_code == 202, answer.text
    assert server.wait_operation(answer.json()["operation"]["id"])["state"] == "succeeded"
    return name


def until(check: Callable[[], Any], seconds: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + seconds
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


def mine(server: Server, name: str) -> dict[str, Any] | None:
    rows = server.api("GET", "/api/metrics/top").json()["instances"]
    row = next((r for r in rows if r["name"] == name), None)
    return row if row and row["memory"] and row["cpu"] is not None else None


def test_a_running_container_shows_in_top_history_and_the_cli(server: Server,
                                                               name: str) -> None:
    row = until(lambda: mine(server, name), what="the instance in /api/metrics/top")
    assert row["containers"] == 1 and row["memory"] > 0
    assert row["rx"] is not None and row["read"] is not None
    # two seconds of one busy core inside the container: its cgroup is charged for them
    container = f"stackhub-{name}-web-1"
    docker("exec", container, "sh", "-c", "end=$(($(date +%s)+2)); "
           "while [ $(date +%s) -lt $end ]; do :; done")

    def busy() -> float:
        chart = server.api("GET", "/api/metrics/history",
                           params={"scope": "instance", "name": name, "range": "1h"}).json()
        return max((v for v in chart["series"]["cpu"]["max"] if v is not None), default=0.0)

    assert until(lambda: busy() > 20, what="the busy second in the 1 h chart")

    day = server.api("GET", "/api/metrics/history",
                     params={"scope": "instance", "name": name, "range": "24h"}).json()
    assert day["step"] == 240 and day["resolution"] == 60
    assert any(v for v in day["series"]["memory"]["mean"]), "the open minute counts too"

    host = server.api("GET", "/api/metrics/history", params={"scope": "host",
                                                               "range": "7d"}).json()
    assert host["scope"] == "host" and host["at"] and host["totals"]["memory_total"] > 0
    assert any(v is not None for v in host["series"]["cpu"]["mean"])

    top = server.cli("top", "--json")
    assert top.returncode == 0, top.stderr
    snapshot = json.loads(top.stdout)
    assert snapshot["enabled"] and snapshot["host"]["cpus"] >= 1
    assert name in [r["name"] for r in snapshot["instances"]]
    shown = server.cli("app", "metrics", name, "--range", "24h", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["name"] == name
    # not a terminal: one table, then it exits
    table = server.cli("top", "--sort", "memory", COLUMNS="200")
    assert table.returncode == 0 and name in table.stdout and "host" in table.stdout


def test_bad_requests_are_refused_with_a_reason(server: Server, name: str) -> None:
    for params, status, words in (
            ({"scope": "host", "range": "2h"}, 422, "range"),
            ({}, 422, "scope"),
            ({"scope": "instance"}, 422, "name"),
            ({"scope": "host", "name": name}, 422, "no name"),
            ({"scope": "instance", "name": "../etc"}, 422, "not allowed"),
            ({"scope": "instance", "name": "nosuchapp"}, 404, "nosuchapp")):
        answer = server.api("GET", "/api/metrics/history", params=params)
        assert answer.status_code == status, (params, answer.text)
        assert words in answer.text, answer.text
    bad = server.cli("app", "metrics", name, "--range", "2d")
    assert bad.returncode == 2 and "--range" in bad.stderr
    assert server.api("GET", "/api/metrics/top", params={"sort": "pid"}).status_code == 422


def test_members_see_only_granted_instances_and_never_the_host(server: Server, name: str,
                                                               tmp_path: Path) -> None:
    user = "metricsmember"
    made = server.api("POST", "/api/users", json={"username": user, "password": PASSWORD,
                                                  "role": "member"})
    assert made.status_code == 201, made.text
    with httpx.Client(base_url=server.url, timeout=30) as member:
        assert member.post("/api/auth/login", json={"username": user,
                                                    "password": PASSWORD}).status_code == 200
        assert member.get("/api/metrics/history", params={"scope": "host"}).status_code == 403
        hidden = member.get("/api/metrics/history", params={"scope": "instance", "name": name})
        assert hidden.status_code == 404
        top = member.get("/api/metrics/top").json()
        assert top["host"] is None and top["instances"] == []
        granted = server.api("PUT", f"/api/users/{user}/instances", json={"instances": [name]})
        assert granted.status_code == 200, granted.text
        shown = member.get("/api/metrics/history", params={"scope": "instance", "name": name})
        assert shown.status_code == 200 and shown.json()["at"]
        assert [r["name"] for r in member.get("/api/metrics/top").json()["instances"]] == [name]
