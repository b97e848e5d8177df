"""The engine probe's raw ping over a unix socket: answered, hung, refused, wrong answer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackhub.adapters.engine import DockerEngine, _unix_socket
from stackhub.errors import EngineUnavailable


def _serve(path: Path, answer: bytes | None) -> Iterator[threading.Event]:
    """Listen on `path`; reply `answer` to each request, or hold the connection (None)."""
    stop = threading.Event()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    server.settimeout(0.1)
    held: list[socket.socket] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.recv(256)
            if answer is None:
                held.append(conn)  # a hung engine: the request is read, never answered
            else:
                conn.sendall(answer)
                conn.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield stop
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "docker.sock"


def test_an_answering_engine_passes(sock: Path) -> None:
    for _ in _serve(sock, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK"):
        DockerEngine(f"unix://{sock}").probe(10)  # generous: the fake's thread may be starved


def test_a_hung_engine_is_told_within_the_timeout(sock: Path) -> None:
    for _ in _serve(sock, None):
        started = time.monotonic()
        with pytest.raises(EngineUnavailable, match="does not answer"):
            DockerEngine(f"unix://{sock}").probe(0.3)
        assert time.monotonic() - started < 5.0  # not the long default timeout


def test_a_wrong_answer_and_a_missing_socket_are_unreachable(sock: Path) -> None:
    for _ in _serve(sock, b"HTTP/1.1 500 Internal Server Error\r\n\r\n"):
        with pytest.raises(EngineUnavailable, match=r"ping answered HTTP/1\.1 500"):
            DockerEngine(f"unix://{sock}").probe(10)
    with pytest.raises(EngineUnavailable, match="not reachable"):
        DockerEngine(f"unix://{sock.parent / 'absent.sock'}").probe(0.5)


def test_only_unix_sockets_take_the_raw_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert _unix_socket(None) == "/var/run/docker.sock"
    assert _unix_socket("unix:///run/x.sock") == "/run/x.sock"
    assert _unix_socket("tcp://10.0.0.1:2376") is None
    monkeypatch.setenv("DOCKER_HOST", "ssh://box")
    assert _unix_socket(None) is None
