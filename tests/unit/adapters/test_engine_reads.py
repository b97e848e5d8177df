"""The engine's raw reads over a unix socket: the requests sent, the answers read, the errors."""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackhub import labels
from stackhub.adapters import engine as engine_module
from stackhub.adapters.engine import DockerEngine
from stackhub.errors import EngineError, EngineUnavailable, NotFound


class FakeSocketEngine:
    """Listens on a unix socket, records each request line, replies `answer` (None: hangs)."""

    def __init__(self, path: Path, answer: bytes | None) -> None:
        """Start listening on `path`."""
        self.answer = answer
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(4)
        self._server.settimeout(0.1)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            self.requests.append(conn.recv(4096).decode().split("\r\n", 1)[0])
            if self.answer is None:
                self._held.append(conn)
            else:
                conn.sendall(self.answer)
                conn.close()

    def close(self) -> None:
        """Stop listening and drop held connections."""
        self._stop.set()
        self._thread.join()
        for conn in self._held:
            conn.close()
        self._server.close()


def _ok(body: object, status: str = "200 OK") -> bytes:
    data = json.dumps(body).encode()
    return (f"HTTP/1.0 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "docker.sock"


@pytest.fixture
def serve(sock: Path) -> Iterator[list[FakeSocketEngine]]:
    started: list[FakeSocketEngine] = []
    yield started
    for fake in started:
        fake.close()


def _query(request_line: str) -> tuple[str, dict[str, str]]:
    target = request_line.split(" ")[1]
    path, _, query = target.partition("?")
    return path, dict(urllib.parse.parse_qsl(query))


def test_containers_are_listed_with_the_managed_labels(sock: Path,
                                                       serve: list[FakeSocketEngine]) -> None:
    fake = FakeSocketEngine(sock, _ok([{
        "Id": "abc", "Names": ["/demo-web-1"], "Image": "img:1", "State": "running",
        "Status": "Up 2 minutes", "Ports": [{"PrivatePort": 80, "PublicPort": 8080,
                                             "IP": "0.0.0.0", "Type": "tcp"}],
        "Labels": {labels.MANAGED: "true", labels.INSTANCE: "demo"}}]))
    serve.append(fake)
    found = DockerEngine(f"unix://{sock}", install="i-1").containers()
    assert [(c.id, c.name, c.state, c.instance, c.managed) for c in found] == [
        ("abc", "demo-web-1", "running", "demo", True)]
    assert [(p.host_port, p.container_port) for p in found[0].ports] == [(8080, 80)]
    path, query = _query(fake.requests[0])
    assert fake.requests[0].endswith(" HTTP/1.0") and path == "/containers/json"
    assert query["all"] == "1"
    assert json.loads(query["filters"]) == {
        "label": [f"{labels.MANAGED}=true", f"{labels.INSTALL}=i-1"]}
    DockerEngine(f"unix://{sock}").containers(managed_only=False)
    assert _query(fake.requests[1]) == ("/containers/json", {"all": "1"})


def test_networks_volumes_and_sizes_are_read(sock: Path, serve: list[FakeSocketEngine]) -> None:
    tags = {labels.INSTANCE: "demo"}
    fake = FakeSocketEngine(sock, _ok([{"Name": "demo_default", "Labels": tags}]))
    serve.append(fake)
    engine = DockerEngine(f"unix://{sock}")
    assert engine.managed_networks() == [("demo_default", "demo")]
    fake.answer = _ok({"Volumes": [{"Name": "demo_data", "Labels": tags}], "Warnings": None})
    assert engine.managed_volumes() == [("demo_data", "demo")]
    fake.answer = _ok({"Volumes": [{"Name": "demo_data", "UsageData": {"Size": 42}},
                                   {"Name": "other", "UsageData": None}]})
    assert engine.volume_sizes() == {"demo_data": 42, "other": -1}
    assert [_query(line)[0] for line in fake.requests] == ["/networks", "/volumes", "/system/df"]


def test_engine_refusals_read_as_the_sdk_path_words_them(sock: Path,
                                                         serve: list[FakeSocketEngine]) -> None:
    fake = FakeSocketEngine(sock, _ok({"message": "no such thing"}, "404 Not Found"))
    serve.append(fake)
    engine = DockerEngine(f"unix://{sock}")
    with pytest.raises(NotFound, match="no such thing"):
        engine.containers()
    fake.answer = _ok({"message": "boom\nsecond line"}, "500 Internal Server Error")
    with pytest.raises(EngineError, match=r"^the engine refused: boom$"):
        engine.managed_networks()
    fake.answer = b"HTTP/1.0 200 OK\r\n\r\nnot json"
    with pytest.raises(EngineError, match="the engine refused: not json"):
        engine.managed_volumes()
    fake.answer = b"garbage"
    with pytest.raises(EngineUnavailable, match="lost the connection"):
        engine.volume_sizes()


def test_a_missing_or_hung_engine_is_unavailable(sock: Path, serve: list[FakeSocketEngine],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EngineUnavailable, match="not reachable; is dockerd running"):
        DockerEngine(f"unix://{sock}").containers()
    serve.append(FakeSocketEngine(sock, None))
    monkeypatch.setattr(engine_module, "RAW_READ_TIMEOUT", 0.3)
    with pytest.raises(EngineUnavailable, match="does not answer; is dockerd hung"):
        DockerEngine(f"unix://{sock}").containers()
