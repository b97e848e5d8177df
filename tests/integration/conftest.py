"""Fixtures for tests against the real Docker engine, Compose and a real server process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.leftovers import mark_install, sweep

REPO = Path(__file__).resolve().parents[2]
FIXTURE_APPS = REPO / "tests" / "fixtures" / "apps"
STACKHUB = [sys.executable, "-m", "stackhub"]
# s for a server to answer: ~2 s on a quiet 2-core box, 15-30 s seen when suites ran in parallel
START_WAIT = float(os.environ.get("STACKHUB_TEST_START_WAIT", "90"))


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI with an argument list; a failure names the command and its stderr."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False,
                            timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}: "
                             f"{result.stderr.strip()[-2000:]}")
    return result


@pytest.fixture(scope="session", autouse=True)
def engine() -> None:
    """Fail (never skip) when the engine is missing: scripts/test must start it."""
    result = docker("info", "--format", "{{.ServerVersion}}", check=False)
    if result.returncode != 0:
        pytest.fail("the Docker engine is not running; run the suite through scripts/test "
                    f"({result.stderr.strip()[:200]})")
    sweep()  # what a killed earlier run left would clash with fixed instance names
    images = docker("images", "-q", "stackhub-test/web:1", check=False).stdout.strip()
    if not images:
        pytest.fail("test image stackhub-test/web:1 is missing; run scripts/test-images")


def free_port() -> int:
    """Return a TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def instance_containers(name: str) -> list[dict[str, Any]]:
    """List the engine's containers of one instance (all states)."""
    out = docker("ps", "-a", "--filter", f"label=io.stackhub.instance={name}", "--format",
                 "{{json .}}").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


class Server:
    """A real `stackhub serve` process on a temporary data root."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        mark_install(data_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"server-{self.port}.log"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STACKHUB_FAULT")}
        env.update({"STACKHUB_DATA_DIR": str(self.data_dir), "STACKHUB_URL": self.url,
                    "PYTHONUNBUFFERED": "1"})
        return env

    def start(self, **extra: str) -> None:
        env = {**self.env, **self.extra_env, **extra}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([*STACKHUB, "serve", "--port", str(self.port)],
                                         env=env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not start: {self.log.read_text()[-2000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    @property
    def token(self) -> str:
        return (self.data_dir / "secrets" / "admin-token").read_text().strip()

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kwargs)

    @contextlib.contextmanager
    def api_stream(self, path: str) -> Iterator[Iterator[str]]:
        """Open a streamed GET and hand over its lines."""
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.stream("GET", f"{self.url}{path}", headers=headers, timeout=120) as answer:
            assert answer.status_code == 200, answer.read()
            yield answer.iter_lines()

    def cli(self, *args: str, timeout: float = 300,
            **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*STACKHUB, *args], capture_output=True, text=True,
                              env={**self.env, **extra}, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)

    def wait_status(self, name: str, wanted: set[str], timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            response = self.api("GET", f"/api/instances/{name}")
            if response.status_code == 200:
                last = response.json()
                if last["status"] in wanted:
                    return last
            time.sleep(0.1)
        raise AssertionError(f"{name} never reached {wanted}; last: {last}")

    def wait_operation(self, op_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            op = self.api("GET", f"/api/operations/{op_id}").json()
            if op["state"] != "running":
                return dict(op)
            time.sleep(0.1)
        raise AssertionError(f"operation {op_id} still running")

    def cleanup_engine(self) -> None:
        """Take down every project this data root created."""
        instances = self.data_dir / "instances"
        names = {p.name for p in instances.iterdir()} if instances.is_dir() else set()
        for name in names:
            docker("compose", "-p", f"stackhub-{name}", "down", "-v", "--remove-orphans",
                   "--timeout", "1", check=False)


@contextlib.contextmanager
def running_server(data_dir: Path, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """Start a server on `data_dir`; stop it and take its instances down afterwards."""
    srv = Server(data_dir, extra_env)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        srv.cleanup_engine()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A running server on a fresh data root; its instances are removed afterwards."""
    with running_server(tmp_path / "data") as srv:
        yield srv


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for a module's tests that need no empty data root (each its own names).

    A server start costs ~3.5 s of CPU (imports, migrations, the store sync); a module's tests
    that only add instances under their own names share one. A test must still pass alone.
    """
    with running_server(tmp_path_factory.mktemp("module-server") / "data") as srv:
        yield srv


@pytest.fixture
def crash_server(tmp_path: Path) -> Iterator[Server]:
    """A server not started yet (a test starts it with fault points), stopped and cleaned up."""
    srv = Server(tmp_path / "data")
    try:
        yield srv
    finally:
        srv.stop()
        srv.cleanup_engine()


def http_text(port: int, timeout: float = 20, path: str = "/") -> str:
    """GET `path` on a published port until it answers."""
    deadline = time.monotonic() + timeout
    error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).text
        except httpx.HTTPError as err:
            error = err
            time.sleep(0.2)
    raise AssertionError(f"port {port} never answered: {error}")


@pytest.fixture(scope="session")
def wheel_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Build this checkout's wheel once per session (test_wheel, test_installer, test_upgrade).

    Returns the wheel and pip constraints pinning the development venv's dependency versions.
    """
    base = tmp_path_factory.mktemp("wheel")
    started = time.monotonic()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STACKHUB_", "PYTHON", "VIRTUAL_ENV"))}
    built = subprocess.run(["bash", str(REPO / "scripts" / "build-wheel"), str(base / "dist")],
                           capture_output=True, text=True, timeout=600,
                           env={**env, "PYTHONUNBUFFERED": "1", "STACKHUB_SKIP_WEB_BUILD": "1"})
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = Path(built.stdout.strip().splitlines()[-1])
    print(f"wheel built in {time.monotonic() - started:.1f} s")
    # the same dependency versions as the development venv, from pip's cache or the mirror
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
                            capture_output=True, text=True, check=True).stdout
    constraints = base / "constraints.txt"
    constraints.write_text("".join(line + "\n" for line in frozen.splitlines()
                                   if not line.lower().startswith("stackhub")))
    return wheel, constraints
