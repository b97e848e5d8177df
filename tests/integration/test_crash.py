"""Kill -9 the server at each point of an install; restart; the instance converges."""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import FIXTURE_APPS, Server, docker, http_text, instance_containers

pytestmark = pytest.mark.integration
REGISTRY = "127.0.0.1:5000"


def app_source(name: str) -> dict[str, str]:
    folder = FIXTURE_APPS / name
    return {"kind": "app", "manifest": (folder / "stackhub-app.yaml").read_text(),
            "compose": (folder / "compose.yaml").read_text()}


def wait_for(predicate: object, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def restart_and_check_interrupted(srv: Server, name: str) -> None:
    srv.kill9()
    srv.start()
    instance = srv.api("GET", f"/api/instances/{name}").json()
    assert instance["status"] == "interrupted", instance
    ops = srv.api("GET", "/api/operations", params={"instance": name}).json()["items"]
    assert ops[0]["state"] == "interrupted"
    assert "retry" in (ops[0]["error"] or "")


def retry_converges(srv: Server, name: str, services: int) -> None:
    result = srv.cli("app", "retry", name)
    assert result.returncode == 0, result.stderr + result.stdout
    assert srv.wait_status(name, {"running"})["status"] == "running"
    containers = instance_containers(name)
    assert len(containers) == services and all(c["State"] == "running" for c in containers)
    # a second retry is refused: nothing left to converge
    assert srv.cli("app", "retry", name).returncode == 1


def test_kill_during_pull(crash_server: Server, tmp_path: Path) -> None:
    images = [f"{REGISTRY}/stackhub-test/web:1", f"{REGISTRY}/stackhub-test/web:2"]
    for image in images:
        docker("rmi", image, check=False)
    marker = tmp_path / "paused"
    crash_server.start(STACKHUB_FAULT_PAUSE="pulled", STACKHUB_FAULT_MARKER=str(marker))
    compose = f"""
services:
  a:
    image: {images[0]}
    stop_grace_period: 1s
  b:
    image: {images[1]}
    stop_grace_period: 1s
"""
    response = crash_server.api("POST", "/api/instances", json={
        "source": {"kind": "compose", "compose": compose}, "name": "t-crash-pull"})
    assert response.status_code == 202, response.text
    wait_for(marker.exists, what="the pause after the first pulled image")
    assert instance_containers("t-crash-pull") == []
    restart_and_check_interrupted(crash_server, "t-crash-pull")
    retry_converges(crash_server, "t-crash-pull", services=2)


def test_kill_after_some_containers_exist(crash_server: Server) -> None:
    crash_server.start()
    response = crash_server.api("POST", "/api/instances", json={
        "source": app_source("slow-health"), "name": "t-crash-up", "values": {"DB_DELAY": "30"}})
    assert response.status_code == 202, response.text
    wait_for(lambda: any(c["State"] == "running" for c in instance_containers("t-crash-up")),
             what="the first container to run")
    restart_and_check_interrupted(crash_server, "t-crash-up")
    # the compose process died with the server: containers exist, the web one never started
    time.sleep(1)
    states = {c["Names"]: c["State"] for c in instance_containers("t-crash-up")}
    assert states.get("stackhub-t-crash-up-db-1") == "running", states
    assert states.get("stackhub-t-crash-up-web-1", "absent") in ("created", "absent"), states
    # shorten the wait for the retry by making the db healthy now
    docker("exec", "stackhub-t-crash-up-db-1", "touch", "/tmp/ready")
    retry_converges(crash_server, "t-crash-up", services=2)


def test_kill_before_the_record_is_written(crash_server: Server, tmp_path: Path) -> None:
    marker = tmp_path / "paused"
    crash_server.start(STACKHUB_FAULT_PAUSE="before-record", STACKHUB_FAULT_MARKER=str(marker))
    response = crash_server.api("POST", "/api/instances", json={
        "source": app_source("web-app"), "name": "t-crash-rec"})
    assert response.status_code == 202
    wait_for(marker.exists, what="the pause before the record")
    port = response.json()
    restart_and_check_interrupted(crash_server, "t-crash-rec")
    retry_converges(crash_server, "t-crash-rec", services=1)
    instance = crash_server.api("GET", "/api/instances/t-crash-rec").json()
    assert http_text(instance["ports"][0]["host_port"]) == "hello\n"
    assert port["instance"] == "t-crash-rec"


def test_kill_between_the_journal_and_the_project_files(crash_server: Server,
                                                        tmp_path: Path) -> None:
    marker = tmp_path / "paused"
    crash_server.start(STACKHUB_FAULT_PAUSE="journaled", STACKHUB_FAULT_MARKER=str(marker))
    name = "t-crash-journal"

    def install() -> None:  # never answered: the server is killed while this request waits
        with contextlib.suppress(httpx.HTTPError):
            crash_server.api("POST", "/api/instances", json={"source": app_source("web-app"),
                                                             "name": name})

    threading.Thread(target=install, daemon=True).start()
    wait_for(marker.exists, what="the pause after the journal write")
    folder = crash_server.data_dir / "instances" / name
    assert not (folder / "compose.yaml").exists()  # journaled, no project files yet
    # the pause holds only this request: the server keeps answering others meanwhile
    health = httpx.get(f"{crash_server.url}/api/health", timeout=5)
    assert health.status_code == 200, health.text
    restart_and_check_interrupted(crash_server, name)
    assert not (folder / "compose.yaml").exists()
    assert instance_containers(name) == []
    retry_converges(crash_server, name, services=1)  # retry renders the files it never got
    assert (folder / "compose.yaml").is_file()
    instance = crash_server.api("GET", f"/api/instances/{name}").json()
    assert http_text(instance["ports"][0]["host_port"]) == "hello\n"


def test_orphans_are_removed_at_start(crash_server: Server) -> None:
    crash_server.start()
    crash_server.stop()
    install = (crash_server.data_dir / "install-id").read_text().strip()
    # a killed earlier run may have left these fixed names behind
    docker("rm", "-f", "t-foreign-web", "stackhub-t-ghost-web-1", check=False)
    docker("network", "rm", "stackhub-t-ghost_default", check=False)
    common = ["--label", "io.stackhub.managed=true", "--label", f"io.stackhub.install={install}",
              "--label", "com.docker.compose.project=stackhub-t-ghost"]
    docker("network", "create", *common, "--label", "io.stackhub.instance=t-ghost",
           "--label", "com.docker.compose.network=default", "stackhub-t-ghost_default")
    docker("run", "-d", "--name", "stackhub-t-ghost-web-1", "--network",
           "stackhub-t-ghost_default", *common, "--label", "io.stackhub.instance=t-ghost",
           "--label", "com.docker.compose.service=web", "stackhub-test/web:1")
    # an object of another StackHub installation on the same engine is not ours to remove
    other = ["--label", "io.stackhub.managed=true", "--label", "io.stackhub.install=other",
             "--label", "io.stackhub.instance=t-foreign"]
    docker("run", "-d", "--name", "t-foreign-web", *other, "stackhub-test/web:1")
    try:
        crash_server.start()
        assert instance_containers("t-ghost") == []
        networks = docker("network", "ls", "-q", "--filter", "label=io.stackhub.instance=t-ghost")
        assert networks.stdout.strip() == ""
        assert [c["Names"] for c in instance_containers("t-foreign")] == ["t-foreign-web"]
    finally:
        docker("rm", "-f", "t-foreign-web", "stackhub-t-ghost-web-1", check=False)
        docker("network", "rm", "stackhub-t-ghost_default", check=False)


def test_remove_interrupted_install_cleans_up(crash_server: Server) -> None:
    crash_server.start()
    response = crash_server.api("POST", "/api/instances", json={
        "source": app_source("slow-health"), "name": "t-crash-rm", "values": {"DB_DELAY": "30"}})
    assert response.status_code == 202
    wait_for(lambda: len(instance_containers("t-crash-rm")) >= 1, what="the first container")
    restart_and_check_interrupted(crash_server, "t-crash-rm")
    result = crash_server.cli("app", "remove", "t-crash-rm", "--purge", "--yes")
    assert result.returncode == 0, result.stderr
    assert instance_containers("t-crash-rm") == []
    assert not (crash_server.data_dir / "appdata" / "t-crash-rm").exists()
