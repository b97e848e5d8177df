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
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
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


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class SecondEngine:
    """Start, stop (SIGTERM, as a host shutdown), freeze (SIGSTOP) and thaw one private dockerd."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sock = root / "docker.sock"
        self.host = f"unix://{self.sock}"
        self.log = root / "dockerd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.frozen = False
        self.bridge = "shtb" + hashlib.sha256(str(root).encode()).hexdigest()[:8]

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
        # its own empty settings, never /etc/docker/daemon.json: with default-address-pools set
        # there, a dockerd restarting on a data root deletes the host's docker0 as "stale"
        config = self.root / "daemon.json"
        config.write_text("{}\n")
        argv = ["dockerd", "--config-file", str(config), "--host", self.host,
                "--data-root", str(self.root / "data"),
                "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "pid"),
                "--bridge", self.bridge, "--iptables=false", "--ip-masq=false",
                "--cgroup-parent", f"stackhub-{self.root.name}"]
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

    def load_images(self, images: tuple[str, ...] = IMAGES) -> None:
        """Copy images from the test engine into this one."""
        for image in images:
            save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
            assert save.stdout is not None
            load = subprocess.run(["docker", "-H", self.host, "load", "-q"], stdin=save.stdout,
                                  capture_output=True, text=True, timeout=120, check=False)
            save.stdout.close()
            assert save.wait(120) == 0 and load.returncode == 0, load.stderr

    def close(self) -> None:
        """Remove every container, stop dockerd, delete its folders."""
        if self.proc is not None and self.proc.poll() is None:
            self.thaw()
            with contextlib.suppress(subprocess.SubprocessError):
                ids = self.docker("ps", "-aq", check=False, timeout=30).stdout.split()
                if ids:
                    self.docker("rm", "-f", *ids, check=False, timeout=60)
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
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def second_engine() -> Iterator[SecondEngine]:
    """A running private dockerd holding the test images, removed afterwards."""
    reason = SecondEngine.available()
    if reason:  # scripts/test runs as root with dockerd installed: never a skip
        pytest.fail(reason)
    # a short path: unix socket paths are limited to 107 bytes
    engine = SecondEngine(Path(tempfile.mkdtemp(prefix="sh-e2-", dir="/tmp")))
    try:
        engine.start()
        engine.load_images()
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
