"""A second, private dockerd for tests that stop, freeze or restart the engine.

The test dockerd that scripts/engine-up started serves every other suite at the same time;
stopping it breaks them. These tests start their own dockerd instead: its own socket, data root,
exec root (and containerd), a default bridge of its own and no iptables rules (Compose's own
bridge networks work, published ports go through docker-proxy) and its own empty settings
file. Never `--bridge none`, nor the host's /etc/docker/daemon.json: a dockerd started with
the first, or restarted with default-address-pools from the second, deletes the host's docker0,
which the test engine's default network needs. The test images are copied into it
from the test engine (`docker save | docker load`). A server is pointed at it with
``DOCKER_HOST`` (the Docker SDK and Compose both read it).

With no iptables rules of its own, traffic between two of its containers crosses the host's
FORWARD chain (br_netfilter), whose policy the test engine set to DROP: a private engine's
containers reach the host and the host reaches them (published ports, the gateway), but they
do not reach each other. The browser suite runs on one (tests/e2e/conftest.py `e2e_engine`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Server

IMAGES = ("stackhub-test/web:1",)
BRIDGE_LOCK = Path("/tmp/stackhub-second-engine-bridge.lock")
"""Held while a private engine picks and makes its default bridge (engines start concurrently)."""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class SecondEngine:
    """Start, stop (SIGTERM, as a host shutdown), freeze (SIGSTOP) and thaw one private dockerd."""

    def __init__(self, root: Path, settings: dict[str, object] | None = None) -> None:
        """Run in `root`; `settings` are its daemon.json (empty unless given)."""
        self.root = root
        self.settings = settings or {}
        self.sock = root / "docker.sock"
        self.host = f"unix://{self.sock}"
        self.log = root / "dockerd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False
        self.bridge = "shtb" + hashlib.sha256(str(root).encode()).hexdigest()[:8]
        # its containers' cgroup parent, from each hierarchy's root: a relative one lands under
        # dockerd's own cgroup, which on a v1 host can differ per controller (memory apart from
        # cpuacct), and StackHub's metrics find a container's cgroups by its memory path
        self.cgroup = f"stackhub-{root.name}"

    @staticmethod
    def available() -> str | None:
        """Say why no second dockerd can run here, or None."""
        if os.geteuid() != 0:
            return "a second dockerd needs root"
        if shutil.which("dockerd") is None:
            return "dockerd is not installed"
        return None

    @property
    def env(self) -> dict[str, str]:
        """The environment that points a server (SDK and Compose) at this engine."""
        return {"DOCKER_HOST": self.host}

    def docker(self, *args: str, check: bool = True,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this engine."""
        return subprocess.run(["docker", "-H", self.host, *args], capture_output=True,
                              text=True, check=check, timeout=timeout)

    def answers(self) -> bool:
        """Tell whether `docker info` answers within 5 s."""
        try:
            return self.docker("info", "--format", "{{.ServerVersion}}", check=False,
                               timeout=5).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def _make_bridge(self) -> None:
        """Create this engine's own default bridge (once) on a /24 no route of the host uses."""
        if subprocess.run(["ip", "link", "show", self.bridge], capture_output=True,
                          check=False).returncode == 0:
            return
        with BRIDGE_LOCK.open("a") as lock:  # two engines starting at once would pick one /24
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._add_bridge()

    def _add_bridge(self) -> None:
        routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True,
                                check=True).stdout
        used = [ipaddress.ip_network(line.split()[0]) for line in routes.splitlines()
                if line and line.split()[0][0].isdigit()]
        for third in range(200, 256):
            net = ipaddress.ip_network(f"10.213.{third}.0/24")
            if not any(net.overlaps(other) for other in used):
                break
        else:
            raise AssertionError("no free 10.213.x.0/24 for the second engine's bridge")
        for args in (["link", "add", "name", self.bridge, "type", "bridge"],
                     ["addr", "add", f"{net.network_address + 1}/24", "dev", self.bridge],
                     ["link", "set", self.bridge, "up"]):
            subprocess.run(["ip", *args], capture_output=True, check=True)

    def start(self, timeout: float = 60) -> float:
        """Start dockerd (again, on the same data root); return the time `docker info` answered."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._make_bridge()
        # its own settings (empty unless given), never /etc/docker/daemon.json: with
        # default-address-pools set there, a dockerd restarting on a data root deletes the host's
        # docker0 as "stale" (this one's default bridge is its own, never docker0)
        config = self.root / "daemon.json"
        config.write_text(json.dumps(self.settings) + "\n")
        argv = ["dockerd", "--config-file", str(config), "--host", self.host,
                "--data-root", str(self.root / "data"),
                "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "pid"),
                "--bridge", self.bridge, "--iptables=false", "--ip-masq=false",
                "--cgroup-parent", f"/{self.cgroup}"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None:
                raise AssertionError("the second dockerd exited: "
                                     + self.log.read_text()[-2000:])
            assert time.monotonic() < deadline, "the second dockerd did not answer"
            time.sleep(0.05)
        return time.monotonic()

    def stop(self) -> float:
        """SIGTERM dockerd; return the monotonic time its socket stopped accepting connections."""
        assert self.proc is not None and self.proc.poll() is None, "not running"
        self.thaw()
        self.proc.send_signal(signal.SIGTERM)
        while True:  # dockerd closes its API socket a moment after the signal
            with socket.socket(socket.AF_UNIX) as probe:
                probe.settimeout(0.5)
                try:
                    probe.connect(str(self.sock))
                except OSError:
                    return time.monotonic()
            time.sleep(0.005)

    def wait_stopped(self, timeout: float = 60) -> None:
        """Wait until the stopped dockerd is gone (its containers stopped)."""
        assert self.proc is not None
        self.proc.wait(timeout)

    def freeze(self) -> float:
        """SIGSTOP dockerd (it keeps its socket, so connections are accepted but never
        answered: a hung engine); return the monotonic time."""
        assert self.proc is not None and self.proc.poll() is None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.frozen = True
        return time.monotonic()

    def thaw(self) -> float:
        """SIGCONT a frozen dockerd; return the monotonic time."""
        if self.frozen and self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.frozen = False
        return time.monotonic()

    def load_images(self, images: tuple[str, ...] = IMAGES, source: str | None = None) -> None:
        """Copy images from the engine at `source` (default: $DOCKER_HOST's, the test engine
        unless set) into this one."""
        where = ["-H", source] if source else []
        for image in images:
            save = subprocess.Popen(["docker", *where, "save", image], stdout=subprocess.PIPE)
            assert save.stdout is not None
            load = subprocess.run(["docker", "-H", self.host, "load", "-q"], stdin=save.stdout,
                                  capture_output=True, text=True, timeout=120, check=False)
            save.stdout.close()
            assert save.wait(120) == 0 and load.returncode == 0, load.stderr

    def close(self) -> None:
        """Remove every container and network, stop dockerd, delete its folders."""
        if self.proc is not None and self.proc.poll() is None:
            self.thaw()
            with contextlib.suppress(subprocess.SubprocessError):
                ids = self.docker("ps", "-aq", check=False, timeout=30).stdout.split()
                if ids:
                    self.docker("rm", "-f", *ids, check=False, timeout=60)
                # a network's bridge outlives its dockerd (with its subnet's host route)
                self.docker("network", "prune", "-f", check=False, timeout=60)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        # a containerd shim of a container caught mid-start by a stop can outlive its engine
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if f"{self.root}/".encode() in cmdline and b"containerd-shim" in cmdline:
                with contextlib.suppress(OSError):
                    os.kill(int(proc.name), signal.SIGKILL)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(self.root))]
        for mount in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        subprocess.run(["ip", "link", "delete", self.bridge], check=False, capture_output=True)
        cgroups = Path("/sys/fs/cgroup")  # its cgroup parent, in each v1 hierarchy or in v2's
        for group in [cgroups / self.cgroup, *cgroups.glob(f"*/{self.cgroup}")]:
            with contextlib.suppress(OSError):  # empty now: its containers' cgroups are gone
                group.rmdir()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def second_engine(images: tuple[str, ...] = IMAGES, *, source: str | None = None,
                  settings: dict[str, object] | None = None) -> Iterator[SecondEngine]:
    """A running private dockerd holding `images` (copied from `source`, see `load_images`)
    and started with `settings` as its daemon.json, removed afterwards."""
    reason = SecondEngine.available()
    if reason:  # scripts/test runs as root with dockerd installed: never a skip
        pytest.fail(reason)
    # a short path: unix socket paths are limited to 107 bytes
    engine = SecondEngine(Path(tempfile.mkdtemp(prefix="sh-e2-", dir="/tmp")), settings)
    try:
        engine.start()
        engine.load_images(images, source)
        yield engine
    finally:
        engine.close()


class PatientServer(Server):
    """A test server that may take up to 120 s to answer (Python's start on a loaded host).

    These tests start a server several times; under the load of every suite running at once
    its start alone has taken 25 s, close to the shared fixture's 30 s.
    """

    def start(self, **extra: str) -> None:
        try:
            super().start(**extra)
        except AssertionError:
            if self.proc is None or self.proc.poll() is not None:
                raise
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                        return
                time.sleep(0.1)
            raise
