"""A failed install stops its containers: no restart loop (restart: unless-stopped), data kept."""

from __future__ import annotations

import time

import pytest

from tests.integration.conftest import Server, docker, instance_containers

pytestmark = pytest.mark.integration
CRASHING = """services:
  web:
    image: stackhub-test/web:1
    command: ["sh", "-c", "echo started >> /data/log; sleep 0.3; exit 3"]
    volumes:
      - ./data:/data
    stop_grace_period: 1s
"""


def restart_count(container: str) -> int:
    return int(docker("inspect", "--format", "{{.RestartCount}}", container).stdout.strip())


def test_a_crash_looping_install_fails_and_its_containers_stay_stopped(server: Server) -> None:
    answer = server.api("POST", "/api/instances", json={
        "source": {"kind": "compose", "compose": CRASHING}, "name": "t-loop"})
    assert answer.status_code == 202, answer.text
    op = server.wait_operation(answer.json()["operation"]["id"])
    assert op["state"] == "failed", op
    assert "exit code 3" in (op["error"] or ""), op
    containers = instance_containers("t-loop")
    assert len(containers) == 1, containers  # kept, for its logs and a retry
    name = containers[0]["Names"]
    policy = docker("inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}", name)
    assert policy.stdout.strip() == "unless-stopped"
    assert containers[0]["State"] == "exited"
    count = restart_count(name)
    time.sleep(3)  # a looping container would have been restarted several times by now
    assert restart_count(name) == count
    assert [c["State"] for c in instance_containers("t-loop")] == ["exited"]
    data = server.data_dir / "appdata" / "t-loop" / "data" / "log"
    assert data.read_text().startswith("started")  # the data is kept
    assert server.api("GET", "/api/instances/t-loop").json()["status"] == "failed"
