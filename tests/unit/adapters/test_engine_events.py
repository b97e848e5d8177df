"""The engine's raw event windows over a unix socket: events, refusals, lost streams."""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackhub.adapters.engine import DockerEngine, _raw_events
from stackhub.errors import EngineError, EngineUnavailable

FILTERS = {"type": ["container"], "label": ["io.stackhub.managed=true"]}
OK = b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n"


def _serve(path: Path, chunks: list[bytes], seen: list[bytes]) -> Iterator[None]:
    """Answer every request on `path` with `chunks`, sent one by one, then close."""
    stop = threading.Event()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    server.settimeout(0.1)

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                seen.append(conn.recv(4096))
                for chunk in chunks:
                    conn.sendall(chunk)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()
    server.close()


def test_events_split_across_reads_are_yielded_in_order(tmp_path: Path) -> None:
    sock, seen = tmp_path / "docker.sock", list[bytes]()
    one, two = {"Action": "start", "id": "a"}, {"Action": "die", "id": "b"}
    body = (json.dumps(one) + "\n" + json.dumps(two)).encode()
    for _ in _serve(sock, [OK[:10], OK[10:] + body[:7], body[7:30], body[30:]], seen):
        assert list(_raw_events(str(sock), 100.5, 101.5, FILTERS)) == [one, two]
    request = seen[0].decode()
    assert request.startswith("GET /events?")
    assert request.endswith("HTTP/1.0\r\nHost: docker\r\n\r\n")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.split()[1]).query)
    assert query["since"] == ["100.500000"] and query["until"] == ["101.500000"]
    assert json.loads(query["filters"][0]) == FILTERS


def test_an_empty_window_yields_nothing(tmp_path: Path) -> None:
    sock, seen = tmp_path / "docker.sock", list[bytes]()
    for _ in _serve(sock, [OK], seen):
        assert list(_raw_events(str(sock), 1.0, 2.0, FILTERS)) == []


def test_a_refusal_is_an_engine_error(tmp_path: Path) -> None:
    sock, seen = tmp_path / "docker.sock", list[bytes]()
    answer = b'HTTP/1.0 400 Bad Request\r\n\r\n{"message":"bad filter"}\n'
    for _ in _serve(sock, [answer], seen):
        with pytest.raises(EngineError, match=r"refused the event stream: HTTP/1\.0 400"):
            list(_raw_events(str(sock), 1.0, 2.0, FILTERS))


def test_lost_streams_and_a_missing_engine_are_unavailable(tmp_path: Path) -> None:
    sock, seen = tmp_path / "docker.sock", list[bytes]()
    for _ in _serve(sock, [], seen):  # closed before any answer
        with pytest.raises(EngineUnavailable, match="no answer"):
            list(_raw_events(str(sock), 1.0, 2.0, FILTERS))
    garbled = tmp_path / "garbled.sock"
    for _ in _serve(garbled, [OK + b"{not json\n"], seen):
        with pytest.raises(EngineUnavailable, match="lost the engine's event stream"):
            list(_raw_events(str(garbled), 1.0, 2.0, FILTERS))
    with pytest.raises(EngineUnavailable, match="is dockerd running"):
        list(_raw_events(str(tmp_path / "absent.sock"), 1.0, 2.0, FILTERS))


def test_the_engine_reads_windows_until_stopped(tmp_path: Path) -> None:
    sock, seen = tmp_path / "docker.sock", list[bytes]()
    event = {"Action": "start", "id": "a"}
    stop = threading.Event()
    for _ in _serve(sock, [OK + json.dumps(event).encode() + b"\n"], seen):
        events = DockerEngine(f"unix://{sock}", install="x").events(stop, window=0.01)
        assert next(events) == event
        assert next(events) == event  # the next window
        stop.set()
        assert list(events) == []  # the window under way ends, then no other starts
    labels = json.loads(urllib.parse.parse_qs(urllib.parse.urlsplit(
        seen[0].decode().split()[1]).query)["filters"][0])["label"]
    assert labels == ["io.stackhub.managed=true", "io.stackhub.install=x"]


def test_events_are_yielded_as_they_arrive_not_at_the_close(tmp_path: Path) -> None:
    path, release = tmp_path / "docker.sock", threading.Event()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    event = {"Action": "start", "id": "a"}

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(OK + json.dumps(event).encode() + b"\n")
            release.wait(10)  # the window stays open until the event was read

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    events = _raw_events(str(path), 1.0, 2.0, FILTERS)
    assert next(events) == event
    release.set()
    assert list(events) == []
    thread.join()
    server.close()
