"""The engine goes away in the middle of an install: interrupted, then a retry converges."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.integration.conftest import FIXTURE_APPS, Server, instance_containers

pytestmark = pytest.mark.integration
DOCKER_SOCK = "/var/run/docker.sock"


class SocketProxy:
    """A unix-socket proxy in front of the Docker socket that can be cut at will."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.listener: socket.socket | None = None
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()

    def start(self) -> None:
        self.path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(self.path))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(DOCKER_SOCK)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Stop accepting and drop every open connection, like a stopped dockerd."""
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        self.path.unlink(missing_ok=True)
        with self.lock:
            for conn in self.conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self.conns.clear()


def test_engine_stopped_mid_install_then_retry(tmp_path: Path) -> None:
    proxy = SocketProxy(tmp_path / "docker.sock")
    proxy.start()
    srv = Server(tmp_path / "data", extra_env={"DOCKER_HOST": f"unix://{proxy.path}"})
    srv.start()
    try:
        folder = FIXTURE_APPS / "slow-health"
        response = srv.api("POST", "/api/instances", json={
            "source": {"kind": "app", "manifest": (folder / "stackhub-app.yaml").read_text(),
                       "compose": (folder / "compose.yaml").read_text()},
            "name": "t-engine-gone", "values": {"DB_DELAY": "4"}})
        assert response.status_code == 202, response.text
        op_id = response.json()["operation"]["id"]
        deadline = time.monotonic() + 30
        while not instance_containers("t-engine-gone") and time.monotonic() < deadline:
            time.sleep(0.1)
        # the cut must come mid-install: containers made, the install still running (the slow
        # healthcheck keeps it in its wait step for seconds)
        assert instance_containers("t-engine-gone"), "no container appeared within 30 s"
        running = srv.api("GET", f"/api/operations/{op_id}").json()
        assert running["state"] == "running", running
        assert running["step"] in ("start", "wait"), running
        proxy.cut()
        op = srv.wait_operation(op_id)
        assert op["state"] == "interrupted"  # the outage alone is no failure: retry converges
        assert op["step"] in ("start", "wait"), op  # it ended where the cut found it
        assert "engine" in (op["error"] or ""), "the interruption must say what went wrong"
        instance = srv.api("GET", "/api/instances/t-engine-gone").json()
        assert instance["status"] == "interrupted"
        health = srv.api("GET", "/api/health").json()
        assert health["status"] == "ok" and health["engine"] is False
        # another request while the engine is away gets a clear 503, and changes nothing
        plain = srv.api("POST", "/api/instances/t-engine-gone/stop")
        assert plain.status_code in (502, 503)
        assert "engine" in plain.json()["error"]["message"].lower()
        # the engine comes back: retry converges
        proxy.start()
        result = srv.cli("app", "retry", "t-engine-gone")
        assert result.returncode == 0, result.stderr
        assert srv.wait_status("t-engine-gone", {"running"})["status"] == "running"
    finally:
        proxy.cut()
        proxy.start()
        srv.stop()
        srv.cleanup_engine()
        proxy.cut()


def test_install_with_no_engine_is_refused_cleanly(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", extra_env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    srv.start()
    try:
        result = srv.cli("app", "install", str(FIXTURE_APPS / "web-app"), "--name", "t-noengine",
                         "--yes")
        assert result.returncode == 1
        assert "engine is not reachable" in result.stderr
        assert srv.api("GET", "/api/instances/t-noengine").status_code == 404
        assert not (srv.data_dir / "instances" / "t-noengine").exists()
        assert srv.api("GET", "/api/health").json()["engine"] is False
    finally:
        srv.stop()
