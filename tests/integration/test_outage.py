"""The test dockerd is stopped and started again: StackHub says so, then apps come back.

Only the dockerd that scripts/engine-up started (its pid file) is ever stopped, with SIGTERM as
a host shutdown would; it is always started again (scripts/engine-up) before a test ends.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import FIXTURE_APPS, REPO, Server, docker, instance_containers

pytestmark = pytest.mark.integration
LAUNCH_PID = Path("/var/run/stackhub-dockerd.pid")  # written by scripts/engine-up
DOCKER_PID = Path("/var/run/docker.pid")  # written by dockerd itself
DOCKER_SOCK = "/var/run/docker.sock"
ENGINE_UP = REPO / "scripts" / "engine-up"
SMALL = "services:\n  web:\n    image: stackhub-test/web:1\n    stop_grace_period: 1s\n"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _test_dockerd() -> int:
    """Return the pid of the dockerd scripts/engine-up started; skip if it is another engine."""
    try:
        pid = int(LAUNCH_PID.read_text().strip())
        same = int(DOCKER_PID.read_text().strip()) == pid
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        pytest.skip("the engine was not started by scripts/engine-up: not stopping it")
    if not same or not _alive(pid) or not cmdline or not cmdline[0].endswith(b"dockerd"):
        pytest.skip("the running dockerd is not the one scripts/engine-up started")
    return pid


def _engine_answers() -> bool:
    return docker("info", "--format", "{{.ServerVersion}}", check=False).returncode == 0


class EngineControl:
    """Stop and start the test dockerd."""

    def __init__(self) -> None:
        self.down = False

    def stop(self) -> float:
        """SIGTERM the test dockerd; return the monotonic time its socket stopped answering."""
        pid = _test_dockerd()
        self.down = True
        os.kill(pid, signal.SIGTERM)
        while True:  # dockerd closes its API socket a moment after the signal
            with socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(0.5)
                try:
                    probe.connect(DOCKER_SOCK)
                except OSError:
                    return time.monotonic()
            time.sleep(0.005)

    def wait_stopped(self, timeout: float = 60) -> None:
        """Wait until the stopped dockerd is gone (its containers stopped)."""
        pid = int(LAUNCH_PID.read_text().strip())
        deadline = time.monotonic() + timeout
        while _alive(pid):
            assert time.monotonic() < deadline, "dockerd did not stop"
            time.sleep(0.1)

    def start(self) -> float:
        """Start it the way the test command does; return when `docker info` answered."""
        self.wait_stopped()
        result = subprocess.run([str(ENGINE_UP)], capture_output=True, text=True, timeout=180,
                                check=False, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr[-2000:]
        deadline = time.monotonic() + 60
        while not _engine_answers():
            assert time.monotonic() < deadline, "the engine did not answer after engine-up"
            time.sleep(0.1)
        self.down = False
        return time.monotonic()


@pytest.fixture
def dockerd() -> Iterator[EngineControl]:
    """Stop/start control of the test dockerd, always running again afterwards."""
    _test_dockerd()
    ctl = EngineControl()
    try:
        yield ctl
    finally:
        if ctl.down or not _engine_answers():
            ctl.start()


def until(check: Callable[[], Any], timeout: float, what: str) -> float:
    """Poll `check` every 20 ms until it is truthy; return the seconds it took."""
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - began


def statuses(srv: Server) -> dict[str, str]:
    return {i["name"]: i["status"] for i in srv.api("GET", "/api/instances").json()}


def install(srv: Server, name: str, compose: str = SMALL) -> None:
    answer = srv.api("POST", "/api/instances", json={
        "source": {"kind": "compose", "compose": compose}, "name": name})
    assert answer.status_code == 202, answer.text
    op = srv.wait_operation(answer.json()["operation"]["id"])
    assert op["state"] == "succeeded", op


def start_slow_install(srv: Server, name: str) -> str:
    """Start installing an app whose database takes 8 s to become healthy; return the op id."""
    folder = FIXTURE_APPS / "slow-health"
    answer = srv.api("POST", "/api/instances", json={
        "source": {"kind": "app", "manifest": (folder / "stackhub-app.yaml").read_text(),
                   "compose": (folder / "compose.yaml").read_text()},
        "name": name, "values": {"DB_DELAY": "8"}})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["operation"]["id"])


def test_engine_restart_reported_apps_back_and_cut_install_retried(
        server: Server, dockerd: EngineControl) -> None:
    """One restart of the test dockerd (it disturbs other suites on this engine) checks all."""
    install(server, "t-out-up")
    install(server, "t-out-down")
    restart = docker("inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}",
                     "stackhub-t-out-up-web-1").stdout.strip()
    assert restart == "unless-stopped"
    assert server.api("POST", "/api/instances/t-out-down/stop").status_code == 200
    busy = start_slow_install(server, "t-out-busy")
    until(lambda: instance_containers("t-out-busy"), 30, "the install's containers exist")
    ops = server.api("GET", "/api/operations").json()["total"]

    # the engine goes away: reported within 2 s, statuses unknown, actions refused unjournaled
    gone = dockerd.stop()
    until(lambda: server.api("GET", "/api/health").json()["engine"] is False, 10,
          "health says the engine is down")
    noticed = time.monotonic() - gone
    print(f"\nengine down reported {noticed:.2f} s after its socket stopped answering")
    assert noticed < 2.0
    health = server.api("GET", "/api/health").json()
    assert health["engine_error"] and health["engine_since"]
    view = server.api("GET", "/api/instances/t-out-up").json()
    assert (view["status"], view["status_reason"]) == ("unknown", "engine unreachable")
    listed = server.cli("app", "list", "--json")
    assert listed.returncode == 0
    assert "the Docker engine is unreachable" in " ".join(listed.stderr.split())
    shown = {i["name"]: i["status"] for i in json.loads(listed.stdout)}
    assert shown["t-out-up"] == shown["t-out-down"] == "unknown"
    refused = server.api("POST", "/api/instances/t-out-down/start")
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "engine_unavailable"
    # the install that was running ends interrupted, not failed
    op = server.wait_operation(busy, timeout=30)
    assert op["state"] == "interrupted", op
    assert "engine" in (op["error"] or "").lower()
    assert server.api("GET", "/api/operations").json()["total"] == ops  # nothing new journaled

    # the engine comes back: statuses exact within 2 s, the running app is back, the stopped
    # one stays stopped
    answered = dockerd.start()
    want = {"t-out-up": "running", "t-out-down": "stopped", "t-out-busy": "interrupted"}
    exact = until(lambda: statuses(server) == want, 15, "statuses exact again")
    print(f"statuses exact {exact:.2f} s after docker info answered "
          f"({time.monotonic() - answered:.2f} s now)")
    assert exact < 2.0
    health = server.api("GET", "/api/health").json()
    assert health["engine"] is True and health["engine_error"] is None
    assert [c["State"] for c in instance_containers("t-out-up")] == ["running"]
    assert [c["State"] for c in instance_containers("t-out-down")] == ["exited"]
    assert server.api("POST", "/api/instances/t-out-down/start").status_code == 200
    # retry converges; the outage alone journaled nothing as failed
    result = server.cli("app", "retry", "t-out-busy")
    assert result.returncode == 0, result.stderr + result.stdout
    assert server.wait_status("t-out-busy", {"running"})["status"] == "running"
    failed = server.api("GET", "/api/operations", params={"state": "failed"}).json()
    assert failed["total"] == 0
