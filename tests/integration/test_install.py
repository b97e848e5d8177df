"""Install, list, logs, lifecycle and remove on the real engine through the CLI and API."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import (
    FIXTURE_APPS,
    Server,
    docker,
    free_port,
    http_text,
    instance_containers,
    running_server,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(module_server: Server) -> Server:
    """The module's shared server: its tests install under names of their own."""
    return module_server


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A shared server nothing is installed on: its tests check a refusal left no trace."""
    with running_server(tmp_path_factory.mktemp("refusals") / "data") as srv:
        yield srv


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Server]:
    """A server of its own, for a test that checks the whole list is empty at the end."""
    with running_server(tmp_path / "data") as srv:
        yield srv


def write_compose(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "my-compose.yaml"
    path.write_text(body)
    return path


def test_custom_compose_full_lifecycle(fresh: Server, tmp_path: Path) -> None:
    port = free_port()
    compose = write_compose(tmp_path, f"""
services:
  web:
    image: stackhub-test/web:1
    command: ["sh", "-c", "echo t-blog-says-hello; exec httpd -f -p 80 -h /www"]
    ports: ["{port}:80"]
    volumes: ["./site:/site"]
    stop_grace_period: 1s
""")
    result = fresh.cli("app", "install", str(compose), "--name", "t-blog", "--yes")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "t-blog is running" in result.stdout
    assert http_text(port) == "hello\n"

    listed = json.loads(fresh.cli("app", "list", "--json").stdout)
    assert [(i["name"], i["status"]) for i in listed] == [("t-blog", "running")]
    assert listed[0]["ports"] == [{"service": "web", "host_port": port, "container_port": 80,
                                   "protocol": "tcp"}]
    assert listed[0]["urls"] == [f"http://127.0.0.1:{port}/"]

    # a plain compose project: compose ls and docker ps show it under a sensible name
    projects = json.loads(docker("compose", "ls", "--format", "json").stdout)
    assert any(p["Name"] == "stackhub-t-blog" for p in projects)
    assert [c["Names"] for c in instance_containers("t-blog")] == ["stackhub-t-blog-web-1"]
    # the relative bind went into the instance's own data dir
    assert (fresh.data_dir / "appdata" / "t-blog" / "site").is_dir()
    env_file = fresh.data_dir / "instances" / "t-blog" / ".env"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"

    assert fresh.cli("app", "stop", "t-blog").returncode == 0
    assert fresh.wait_status("t-blog", {"stopped"})["status"] == "stopped"
    assert fresh.cli("app", "start", "t-blog").returncode == 0
    fresh.wait_status("t-blog", {"running"})
    assert fresh.cli("app", "restart", "t-blog").returncode == 0
    fresh.wait_status("t-blog", {"running"})

    logs = fresh.api("GET", "/api/instances/t-blog/logs", params={"tail": 10})
    assert logs.status_code == 200
    lines = [line for line in logs.text.splitlines() if "t-blog-says-hello" in line]
    assert len(lines) >= 2, logs.text  # one per start: install, start and restart
    assert all("web-1" in line for line in lines), lines  # each line names its container

    removed = fresh.cli("app", "remove", "t-blog", "--yes")
    assert removed.returncode == 0, removed.stderr
    assert instance_containers("t-blog") == []
    assert (fresh.data_dir / "appdata" / "t-blog").is_dir(), "data is kept by default"
    assert json.loads(fresh.cli("app", "list", "--json").stdout) == []


def test_logs_follow_and_tail(server: Server, tmp_path: Path) -> None:
    compose = write_compose(tmp_path, """
services:
  talker:
    image: stackhub-test/web:1
    command: ["sh", "-c", "i=0; while true; do echo line-$$i; i=$$((i+1)); sleep 0.2; done"]
    stop_grace_period: 1s
""")
    assert server.cli("app", "install", str(compose), "--name", "t-logs", "--yes").returncode == 0
    server.wait_status("t-logs", {"running"})
    import time

    deadline = time.monotonic() + 30
    while True:  # until the talker has printed at least two lines (one every 0.2 s)
        tail = server.cli("app", "logs", "t-logs", "--tail", "2")
        assert tail.returncode == 0
        lines = [ln for ln in tail.stdout.splitlines() if "line-" in ln]
        if len(lines) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(lines) == 2
    import subprocess

    from tests.integration.conftest import STACKHUB

    follow = subprocess.Popen([*STACKHUB, "app", "logs", "t-logs", "--follow", "--tail", "1"],
                              env=server.env, stdout=subprocess.PIPE, text=True)
    assert follow.stdout is not None
    seen = [follow.stdout.readline() for _ in range(4)]
    follow.kill()
    follow.wait(5)
    assert all("line-" in ln for ln in seen), seen


def test_purge_deletes_only_the_instance_directories(server: Server, tmp_path: Path) -> None:
    compose = write_compose(tmp_path, """
services:
  web:
    image: stackhub-test/web:1
    volumes: ["./files:/files", "cache:/cache"]
    stop_grace_period: 1s
volumes:
  cache: {}
""")
    assert server.cli("app", "install", str(compose), "--name", "t-purge", "--yes").returncode == 0
    appdata = server.data_dir / "appdata"
    decoys = [appdata / "t-purge-old", appdata / "xt-purge", server.data_dir / "t-purge"]
    for decoy in decoys:
        decoy.mkdir()
        (decoy / "keep.txt").write_text("mine")
    (appdata / "t-purge" / "files" / "data.txt").write_text("x")
    volumes = docker("volume", "ls", "-q", "--filter", "label=io.stackhub.instance=t-purge")
    assert volumes.stdout.split() == ["stackhub-t-purge_cache"]

    result = server.cli("app", "remove", "t-purge", "--purge", "--yes")
    assert result.returncode == 0, result.stderr
    assert not (appdata / "t-purge").exists()
    assert not (server.data_dir / "instances" / "t-purge").exists()
    assert all((d / "keep.txt").read_text() == "mine" for d in decoys)
    assert docker("volume", "ls", "-q", "--filter", "label=io.stackhub.instance=t-purge"
                  ).stdout.split() == []


def test_two_instances_of_one_app_side_by_side(server: Server) -> None:
    app_dir = str(FIXTURE_APPS / "web-app")
    first = server.cli("app", "install", app_dir, "--name", "t-one", "--yes")
    second = server.cli("app", "install", app_dir, "--name", "t-two", "--yes")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    one = server.api("GET", "/api/instances/t-one").json()
    two = server.api("GET", "/api/instances/t-two").json()
    assert one["ports"][0]["host_port"] != two["ports"][0]["host_port"]
    assert one["parameters"]["ADMIN_TOKEN"] == "********"  # secrets hidden after creation
    for item in (one, two):
        assert http_text(item["ports"][0]["host_port"]) == "hello\n"
    assert (server.data_dir / "appdata" / "t-one" / "state").is_dir()
    assert (server.data_dir / "appdata" / "t-two" / "state").is_dir()


def test_two_service_app_services_talk(server: Server) -> None:
    result = server.cli("app", "install", str(FIXTURE_APPS / "two-tier"), "--name", "t-tier",
                        "--yes")
    assert result.returncode == 0, result.stderr
    port = server.api("GET", "/api/instances/t-tier").json()["ports"][0]["host_port"]
    import time

    deadline = time.monotonic() + 20
    text = ""
    while time.monotonic() < deadline:
        text = http_text(port)
        if text == "hello v2\n":
            break
        time.sleep(0.5)
    assert text == "hello v2\n", "front should serve what it fetched from api by service DNS"


def test_reinstall_after_remove_keeps_secrets(server: Server) -> None:
    app_dir = str(FIXTURE_APPS / "web-app")
    assert server.cli("app", "install", app_dir, "--name", "t-keep", "--yes").returncode == 0
    env_file = server.data_dir / "instances" / "t-keep" / ".env"
    before = [ln for ln in env_file.read_text().splitlines() if ln.startswith("ADMIN_TOKEN=")]
    assert server.cli("app", "remove", "t-keep", "--yes").returncode == 0
    assert server.cli("app", "install", app_dir, "--name", "t-keep", "--yes").returncode == 0
    after = [ln for ln in env_file.read_text().splitlines() if ln.startswith("ADMIN_TOKEN=")]
    assert before == after and len(before[0]) > len("ADMIN_TOKEN=''") + 20


def test_port_clash_is_refused_and_changes_nothing(server: Server, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        compose = write_compose(tmp_path, f"""
services:
  web:
    image: stackhub-test/web:1
    ports: ["{port}:80"]
""")
        result = server.cli("app", "install", str(compose), "--name", "t-clash", "--yes")
        assert result.returncode == 1
        assert f"host port {port}/tcp" in result.stderr and "already in use" in result.stderr
        # a port parameter explicitly set to a taken port is refused too
        app_dir = str(FIXTURE_APPS / "web-app")
        result = server.cli("app", "install", app_dir, "--name", "t-clash2", "--set",
                            f"WEB_PORT={port}", "--yes")
        assert result.returncode == 1
        assert "already in use" in result.stderr
        # while the default of a port parameter is simply re-allocated
        result = server.cli("app", "install", app_dir, "--name", "t-realloc", "--set",
                            "GREETING=hi there", "--yes")
        assert result.returncode == 0, result.stderr
    assert server.api("GET", "/api/instances/t-clash").status_code == 404
    assert not (server.data_dir / "instances" / "t-clash").exists()
    assert instance_containers("t-clash") == []


def test_image_that_cannot_be_pulled(refusals: Server, tmp_path: Path) -> None:
    compose = write_compose(tmp_path, """
services:
  web:
    image: 127.0.0.1:5000/stackhub-test/does-not-exist:9
""")
    result = refusals.cli("app", "install", str(compose), "--name", "t-nopull", "--yes")
    assert result.returncode == 1
    assert "could not pull image 127.0.0.1:5000/stackhub-test/does-not-exist:9" in result.stderr
    assert refusals.api("GET", "/api/instances/t-nopull").status_code == 404
    assert not (refusals.data_dir / "instances" / "t-nopull").exists()
    assert not (refusals.data_dir / "appdata" / "t-nopull").exists()
    ops = refusals.api("GET", "/api/operations", params={"instance": "t-nopull"}).json()["items"]
    assert ops[0]["state"] == "failed"


@pytest.mark.parametrize(("body", "message"), [
    ("services: [unclosed", "not valid YAML at line"),
    ("services:\n  web:\n    image: x\n    ports: 12\n", "compose file is invalid"),
    ("a: &a [1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"{n}: &{n} [{','.join(['*' + p] * 9)}]\n" for p, n in zip("abcde", "bcdef", strict=True))
     + "services: {}\n", "alias bomb"),
    ("services:\n  web:\n    build: .\n", "prebuilt images only"),
])
def test_bad_compose_is_refused(refusals: Server, tmp_path: Path, body: str, message: str) -> None:
    compose = write_compose(tmp_path, body)
    result = refusals.cli("app", "install", str(compose), "--name", "t-bad", "--yes")
    assert result.returncode == 1
    assert message in result.stderr.replace("\n", " ")
    assert not (refusals.data_dir / "instances" / "t-bad").exists()


def test_oversized_compose_is_refused(refusals: Server, tmp_path: Path) -> None:
    compose = write_compose(tmp_path, "x: " + "a" * (600 * 1024) + "\n")
    result = refusals.cli("app", "install", str(compose), "--name", "t-big", "--yes")
    assert result.returncode == 1
    assert "larger than" in result.stderr


@pytest.mark.parametrize("name", ["../etc", "a;reboot", "-rf", "UPPER", "a" * 41, "x y", "é"])
def test_hostile_instance_names(refusals: Server, name: str) -> None:
    result = refusals.cli("app", "install", str(FIXTURE_APPS / "web-app"), "--name", name, "--yes")
    assert result.returncode == 1
    assert "is not allowed" in result.stderr
    assert sorted(p.name for p in (refusals.data_dir / "instances").iterdir()) == []


def test_duplicate_name_unknown_app_and_bad_parameters(server: Server) -> None:
    app_dir = str(FIXTURE_APPS / "web-app")
    assert server.cli("app", "install", app_dir, "--name", "t-dup", "--yes").returncode == 0
    again = server.cli("app", "install", app_dir, "--name", "t-dup", "--yes")
    assert again.returncode == 1 and "already exists" in again.stderr
    unknown = server.cli("app", "install", "official/no-such-app", "--yes")
    assert unknown.returncode == 1 and "no app 'no-such-app'" in unknown.stderr
    bad = server.cli("app", "install", app_dir, "--name", "t-badparam", "--set", "GREETING=HI!",
                     "--yes")
    assert bad.returncode == 1 and "GREETING" in bad.stderr
    extra = server.cli("app", "install", app_dir, "--name", "t-badparam", "--set", "NOPE=1",
                       "--yes")
    assert extra.returncode == 1 and "unknown parameter" in extra.stderr
    assert server.api("GET", "/api/instances/t-badparam").status_code == 404


def test_plan_writes_project_without_touching_engine(refusals: Server, tmp_path: Path) -> None:
    before = docker("ps", "-aq").stdout
    out = tmp_path / "plan"
    result = refusals.cli("app", "plan", str(FIXTURE_APPS / "web-app"), "--name", "t-plan",
                        "--set", "MOTD=it's $HOME \\ \"q\" ${X}", "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert docker("ps", "-aq").stdout == before
    assert not (refusals.data_dir / "instances" / "t-plan").exists()
    # the rendered project is a plain compose project: compose itself reads the literal value
    config = docker("compose", "--project-directory", str(out), "-f", str(out / "compose.yaml"),
                    "--env-file", str(out / ".env"), "config", "--format", "json")
    model = json.loads(config.stdout)
    # compose config prints literal dollars escaped as $$ (so its output can be reused)
    motd = model["services"]["web"]["environment"]["MOTD"].replace("$$", "$")
    assert motd == "it's $HOME \\ \"q\" ${X}"


def test_risky_compose_needs_consent_bound_to_digest(server: Server, tmp_path: Path) -> None:
    compose = write_compose(tmp_path, """
services:
  web:
    image: stackhub-test/web:1
    volumes: ["/var/run/docker.sock:/var/run/docker.sock", "/etc:/host-etc:ro"]
    stop_grace_period: 1s
""")
    refused = server.cli("app", "install", str(compose), "--name", "t-risky", "--yes")
    assert refused.returncode == 1
    assert "--accept-risks sha256:" in refused.stderr
    assert "docker.sock" in refused.stderr and "/etc" in refused.stderr
    digest = refused.stderr.split("--accept-risks ")[1].split()[0]
    wrong = server.cli("app", "install", str(compose), "--name", "t-risky",
                       "--accept-risks", "sha256:" + "0" * 64, "--yes")
    assert wrong.returncode == 1 and instance_containers("t-risky") == []
    accepted = server.cli("app", "install", str(compose), "--name", "t-risky",
                          "--accept-risks", digest, "--yes")
    assert accepted.returncode == 0, accepted.stderr


def test_remove_while_installing_is_refused(server: Server) -> None:
    response = server.api("POST", "/api/instances", json={
        "source": {"kind": "app", "manifest": (FIXTURE_APPS / "slow-health" /
                                               "stackhub-app.yaml").read_text(),
                   "compose": (FIXTURE_APPS / "slow-health" / "compose.yaml").read_text()},
        "name": "t-busy", "values": {"DB_DELAY": "3"}})
    assert response.status_code == 202, response.text
    removal = server.api("DELETE", "/api/instances/t-busy")
    assert removal.status_code == 409
    assert "being installed" in removal.json()["error"]["message"]
    op = server.wait_operation(response.json()["operation"]["id"])
    assert op["state"] == "succeeded"
    assert server.cli("app", "remove", "t-busy", "--yes").returncode == 0


def test_status_follows_engine_events(server: Server) -> None:
    assert server.cli("app", "install", str(FIXTURE_APPS / "web-app"), "--name", "t-events",
                      "--yes").returncode == 0
    docker("stop", "-t", "1", "stackhub-t-events-web-1")
    assert server.wait_status("t-events", {"stopped"}, timeout=15)["status"] == "stopped"
    docker("start", "stackhub-t-events-web-1")
    assert server.wait_status("t-events", {"running"}, timeout=15)["status"] == "running"


def test_server_not_running_message(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data")
    result = srv.cli("app", "list")
    assert result.returncode == 1
    assert "server is not running" in result.stderr


def test_purge_cannot_be_pointed_at_a_foreign_volume(server: Server, tmp_path: Path) -> None:
    docker("volume", "create", "t-victim-volume")
    try:
        compose = write_compose(tmp_path, """
services:
  web:
    image: stackhub-test/web:1
    volumes: ["data:/v"]
    stop_grace_period: 1s
volumes:
  data: {name: t-victim-volume}
""")
        result = server.cli("app", "install", str(compose), "--name", "t-adopt", "--yes")
        assert result.returncode == 0, result.stderr
        mounts = docker("inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}",
                        "stackhub-t-adopt-web-1").stdout.strip()
        assert mounts == "stackhub-t-adopt_data"
        assert server.cli("app", "remove", "t-adopt", "--purge", "--yes").returncode == 0
        assert docker("volume", "ls", "-q", "--filter", "name=^t-victim-volume$"
                      ).stdout.split() == ["t-victim-volume"]
    finally:
        docker("volume", "rm", "t-victim-volume", check=False)
