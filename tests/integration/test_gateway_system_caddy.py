"""A system Caddy reused through STACKHUB_CADDY_ADMIN: real Caddy run as a service would run it.

The module starts its own ``caddy run`` with only an admin API on a unix socket (what a system
service's empty Caddy looks like), and one server pointed at it. StackHub must load its config
there, start no Caddy of its own, load the config again when that Caddy restarts empty, and
read Caddy's certificate errors from the log file its config adds (there is no child output).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration.conftest import Server
from tests.integration.gateway_env import (
    AcmeLab,
    eventually,
    fetch,
    gateway_server,
    install_web,
    internal_root,
    running_lab,
)

pytestmark = pytest.mark.integration
BASE = "home.lan"
APP = "sysweb"  # unique: compose projects are named after instances
BLOCKED = "refused.example.test"


class SystemCaddy:
    """``caddy run`` with only its admin API on a unix socket, as a service manager runs it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / "admin.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it empty and wait until its admin API answers."""
        boot = self.folder / "caddy.json"
        boot.write_text(json.dumps({"admin": {"listen": f"unix/{self.socket}"}}))
        self.socket.unlink(missing_ok=True)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.folder),
               "XDG_DATA_HOME": str(self.folder / "data"),
               "XDG_CONFIG_HOME": str(self.folder / "config")}
        with (self.folder / "caddy.log").open("ab") as log:
            self.proc = subprocess.Popen(["caddy", "run", "--config", str(boot)], env=env,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.folder)
        eventually(lambda: self.config(), timeout=10)

    def config(self) -> str:
        """Return the loaded config as text, read from the admin socket."""
        transport = httpx.HTTPTransport(uds=str(self.socket))
        with httpx.Client(transport=transport, timeout=5) as client:
            answer = client.get("http://caddy/config/", headers={"Host": ""})
        assert answer.status_code == 200, answer.text
        return answer.text

    def kill(self) -> None:
        """Kill it (SIGKILL: a crash; the service manager starts it again, empty)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeLab]:
    """Pebble (refusing BLOCKED) and its DNS for this module."""
    yield from running_lab(tmp_path_factory, blocklist=(BLOCKED,))


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SystemCaddy]:
    """The system Caddy, started before StackHub."""
    caddy = SystemCaddy(tmp_path_factory.mktemp("system-caddy"))
    caddy.start()
    try:
        yield caddy
    finally:
        caddy.kill()


@pytest.fixture(scope="module")
def srv(lab: AcmeLab, system: SystemCaddy,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server using the system Caddy, with one instance and the LAN base home.lan."""
    env = {**lab.env(), "STACKHUB_CADDY_ADMIN": str(system.socket)}
    with gateway_server(tmp_path_factory.mktemp("system-gateway"), env, BASE,
                        lambda server: install_web(server, APP)) as server:
        yield server


def test_apps_are_served_through_the_system_caddy(srv: Server, system: SystemCaddy,
                                                  lab: AcmeLab, tmp_path: Path) -> None:
    root = internal_root(srv, tmp_path)
    answer = fetch(lab, f"{APP}.{BASE}", root)
    assert (answer.status_code, answer.text.strip()) == (200, f"hello from {APP}")
    assert '"stackhub"' in system.config()  # StackHub's server is in the system Caddy
    assert srv.proc is not None
    own = [p for p in psutil.Process(srv.proc.pid).children(recursive=True)
           if p.name() == "caddy"]
    assert own == []  # StackHub started no Caddy of its own
    assert not (srv.data_dir / "gateway" / "admin.sock").exists()
    gateway = srv.api("GET", "/api/gateway").json()
    assert gateway["mode"] == "system", gateway


def test_a_certificate_failure_is_read_from_the_system_caddys_log(srv: Server,
                                                                  lab: AcmeLab) -> None:
    """No child output to read: the error reaches `domain add` through Caddy's log file, so
    the command ends with the CA's reason instead of waiting for its timeout (60 s here)."""
    lab.dns("add-a", host=f"{BLOCKED}.", addresses=["127.0.0.1"])
    started = time.monotonic()
    result = srv.cli("domain", "add", APP, BLOCKED)
    took = time.monotonic() - started
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, text
    assert f"refuses to issue a certificate for {BLOCKED}" in text, text
    assert took < 40, f"{took:.0f} s: the logged failure should end the wait ({text})"
    log = srv.data_dir / "gateway" / "logs" / "caddy-errors.log"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries and all(e["level"] == "error" for e in entries)
    assert all(e["logger"].startswith("tls") for e in entries)  # nothing but certificates
    assert any(BLOCKED in json.dumps(e) and "rejectedIdentifier" in json.dumps(e)
               for e in entries)


def test_a_system_caddy_restarted_empty_gets_the_config_again(srv: Server, system: SystemCaddy,
                                                              lab: AcmeLab,
                                                              tmp_path: Path) -> None:
    root = internal_root(srv, tmp_path)
    system.kill()
    system.start()
    assert '"stackhub"' not in system.config()  # empty, as its service manager starts it
    started = time.monotonic()
    eventually(lambda: fetch(lab, f"{APP}.{BASE}", root).raise_for_status(), timeout=20)
    assert time.monotonic() - started < 15
    assert fetch(lab, f"{APP}.{BASE}", root).text.strip() == f"hello from {APP}"
    assert os.path.exists(system.socket)
