"""StackHub's own readiness wait on the real engine: healthchecks, crashes, one-shot jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import Server, instance_containers

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(module_server: Server) -> Server:
    """The module's shared server: each test installs under a name of its own."""
    return module_server


def install(server: Server, tmp_path: Path, name: str, body: str) -> tuple[int, dict[str, object]]:
    path = tmp_path / f"{name}.yaml"
    path.write_text(body)
    result = server.cli("app", "install", str(path), "--name", name, "--yes", "--json")
    return result.returncode, json.loads(result.stdout)


def test_install_waits_for_a_healthcheck_and_streams_whom_it_waits_for(
        server: Server, tmp_path: Path) -> None:
    path = tmp_path / "slow.yaml"
    path.write_text("""
services:
  slow:
    image: stackhub-test/web:1
    command: ["sh", "-c", "sleep 1.5; touch /tmp/ready; exec httpd -f -p 80 -h /www"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 1s
      start_period: 10s
    stop_grace_period: 1s
""")
    accepted = server.api("POST", "/api/instances", json={
        "source": {"kind": "compose", "compose": path.read_text()}, "name": "t-slow"})
    assert accepted.status_code == 202, accepted.text
    op_id = accepted.json()["operation"]["id"]
    with server.api_stream(f"/api/operations/{op_id}/events") as lines:
        events = [json.loads(line) for line in lines if line]
    waits = [e["data"]["waiting"] for e in events if e["data"].get("waiting")]
    assert [{"service": "slow", "reason": "health"}] in waits, events
    assert events[-1]["kind"] == "result"
    assert events[-1]["data"]["operation"]["state"] == "succeeded"
    assert events[-1]["data"]["instance"]["status"] == "running"
    health = [c["Status"] for c in instance_containers("t-slow")]
    assert len(health) == 1 and "(healthy)" in health[0]


def test_a_crashing_container_fails_the_install_with_its_exit_code(
        server: Server, tmp_path: Path) -> None:
    code, answer = install(server, tmp_path, "t-crash", """
services:
  web:
    image: stackhub-test/web:1
    stop_grace_period: 1s
  broken:
    image: stackhub-test/web:1
    command: ["sh", "-c", "exit 3"]
""")
    assert code == 1
    op = answer["operation"]
    assert isinstance(op, dict) and op["state"] == "failed"
    assert op["error"] == "container stackhub-t-crash-broken-1 stopped (exit code 3); see its logs"
    listed = {i["name"]: i for i in json.loads(server.cli("app", "list", "--json").stdout)}
    assert listed["t-crash"]["status"] in ("failed", "partial")


def test_an_unhealthy_container_fails_the_install(server: Server, tmp_path: Path) -> None:
    code, answer = install(server, tmp_path, "t-sick", """
services:
  sick:
    image: stackhub-test/web:1
    healthcheck:
      test: ["CMD", "false"]
      interval: 1s
      retries: 1
    stop_grace_period: 1s
""")
    assert code == 1
    op = answer["operation"]
    assert isinstance(op, dict)
    assert op["error"] == "container stackhub-t-sick-sick-1 is unhealthy; see its logs and " \
        "healthcheck"


def test_a_one_shot_job_that_others_wait_on_may_exit_zero(server: Server, tmp_path: Path) -> None:
    code, answer = install(server, tmp_path, "t-job", """
services:
  migrate:
    image: stackhub-test/web:1
    command: ["sh", "-c", "echo migrated"]
  web:
    image: stackhub-test/web:1
    depends_on:
      migrate: {condition: service_completed_successfully}
    stop_grace_period: 1s
""")
    assert code == 0, answer
    instance = answer["instance"]
    assert isinstance(instance, dict) and instance["status"] == "running"


def test_a_container_that_dies_soon_after_start_fails_as_with_compose_wait(
        server: Server, tmp_path: Path) -> None:
    # compose --wait looks first at 0.5 s and would report this exit; so must StackHub
    code, answer = install(server, tmp_path, "t-late", """
services:
  late:
    image: stackhub-test/web:1
    command: ["sh", "-c", "sleep 0.3; exit 3"]
""")
    assert code == 1
    op = answer["operation"]
    assert isinstance(op, dict)
    assert op["error"] == "container stackhub-t-late-late-1 stopped (exit code 3); see its logs"
