"""HTTP over the engine's unix socket: requests, heads, bodies, and execs over a fake engine."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from stackhub.adapters import docker_socket
from stackhub.adapters.exec import STDOUT, EngineExec
from stackhub.errors import EngineError, EngineUnavailable, NotFound


def test_requests_heads_and_bodies() -> None:
    assert docker_socket.request("GET", "/_ping") == b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n"
    assert docker_socket.request("POST", "/x", body=b"{}", version="1.1",
                                 headers=("Upgrade: tcp",)) == (
        b"POST /x HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\nUpgrade: tcp\r\n\r\n{}")
    head = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3"
    assert docker_socket.status(head) == (404, "HTTP/1.1 404 Not Found")
    assert docker_socket.headers(head) == {"content-length": "3"}
    assert docker_socket.status(b"garbage") == (0, "garbage")
    assert docker_socket.dechunk(b"4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\n\r\n") == b"Wikipedia"
    assert docker_socket.message(b'{"message": "boom\\nmore"}') == "boom"
    assert docker_socket.message(b"plain text\n") == "plain text"
    assert docker_socket.message(b"") == ""


def test_the_head_is_split_from_a_streamed_body() -> None:
    head, body = docker_socket.split_head(iter([b"HTTP/1.0 200 OK\r", b"\n\r\nab", b"cd"]))
    assert head == b"HTTP/1.0 200 OK" and list(body) == [b"ab", b"cd"]
    head, body = docker_socket.split_head(iter([b"HTTP/1.0 200"]))  # closed inside the head
    assert head == b"HTTP/1.0 200" and list(body) == []


class FakeEngine:
    """An asyncio unix-socket server answering each connection with `answer`."""

    def __init__(self, answer: bytes) -> None:
        """Remember the answer; requests are recorded as they come."""
        self.answer = answer
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read one request head (and its body), answer, close."""
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        self.requests.append(head + await reader.readexactly(length))
        writer.write(self.answer)
        await writer.drain()
        writer.close()


async def _serve(path: Path, answer: bytes) -> tuple[FakeEngine, asyncio.Server]:
    fake = FakeEngine(answer)
    return fake, await asyncio.start_unix_server(fake.handle, path=str(path))


async def test_exec_reads_chunked_answers_and_words_refusals(tmp_path: Path) -> None:
    state = json.dumps({"Running": False, "ExitCode": 3, "Pid": 0}).encode()
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               + f"{len(state):x}\r\n".encode() + state + b"\r\n0\r\n\r\n")
    fake, server = await _serve(tmp_path / "d.sock", chunked)
    async with server:
        execs = EngineExec(str(tmp_path / "d.sock"))
        found = await execs.inspect("e1")
        assert (found.running, found.exit_code) == (False, 3)
        assert fake.requests[0].startswith(b"GET /exec/e1/json HTTP/1.1\r\nHost: docker\r\n")
        assert b"Connection: close\r\n" in fake.requests[0]
        fake.answer = (b"HTTP/1.1 404 Not Found\r\nContent-Length: 24\r\n\r\n"
                       b'{"message":"no such ex"}')
        with pytest.raises(NotFound, match="cannot inspect the command: no such ex"):
            await execs.inspect("e1")
        fake.answer = b"HTTP/1.1 409 Conflict\r\nContent-Length: 7\r\n\r\nstopped"
        with pytest.raises(EngineError, match=r"stopped \(is the container running\?\)"):
            await execs.create("c", ["true"], tty=False)
        fake.answer = b"garbage\r\n\r\n"
        with pytest.raises(EngineUnavailable, match=r"lost the connection.*'garbage'"):
            await execs.inspect("e1")
        fake.answer = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nshort"
        with pytest.raises(EngineUnavailable, match=r"lost the connection.*broke off"):
            await execs.inspect("e1")


async def test_exec_start_upgrades_to_a_byte_pipe(tmp_path: Path) -> None:
    frame = bytes([STDOUT, 0, 0, 0]) + (2).to_bytes(4, "big") + b"hi"
    answer = b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n" + frame
    fake, server = await _serve(tmp_path / "d.sock", answer)
    async with server:
        stream = await EngineExec(str(tmp_path / "d.sock")).start("e1", tty=False)
        assert await stream.read() == (STDOUT, b"hi")
        assert await stream.read() is None
        await stream.close()
    request = fake.requests[0]
    assert request.startswith(b"POST /exec/e1/start HTTP/1.1\r\n")
    assert b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" in request
    assert json.loads(request.split(b"\r\n\r\n", 1)[1]) == {"Detach": False, "Tty": False}


async def test_a_missing_engine_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match=r"not reachable; is dockerd running\? \(No such"):
        await EngineExec(str(tmp_path / "absent.sock")).inspect("e1")
