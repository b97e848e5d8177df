"""The CLI's http.client transport, Client and run_operation against a real loopback server."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stackhub.cli import operations
from stackhub.cli.client import Client, ClientError, query
from stackhub.cli.operations import run_operation
from stackhub.cli.transport import HttpTransport, TransportError

WAIT = 30.0  # the longest a server handler waits for the test (never reached when all is well)

Route = Callable[["Handler"], None]


@dataclass
class Seen:
    """One request as the server received it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """A thread-served loopback HTTP server whose answers are set per path by each test."""

    httpd: ThreadingHTTPServer
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def paths(self) -> list[str]:
        return [f"{s.method} {s.path}" for s in self.seen]


class Handler(BaseHTTPRequestHandler):
    """Record each request and hand it to the route the test registered for its path."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def state(self) -> Server:
        state: Server = getattr(self.server, "state")  # noqa: B009 - set by the fixture
        return state

    def do_GET(self) -> None:
        self.dispatch()

    def do_POST(self) -> None:
        self.dispatch()

    def do_PUT(self) -> None:
        self.dispatch()

    def do_DELETE(self) -> None:
        self.dispatch()

    def dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.state.seen.append(Seen(self.command, self.path, headers, body))
        route = self.state.routes.get(self.path.split("?", 1)[0])
        if route is None:
            self.send_json(404, {"error": {"code": "not_found", "message": self.path}})
        else:
            route(self)

    # -- answers the routes put together --

    def send_body(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, data: Any) -> None:
        self.send_body(status, json.dumps(data).encode(), "application/json")

    def start_chunked(self, status: int = 200, content_type: str = "application/x-ndjson") \
            -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def cut(self, *, reset: bool = False) -> None:
        """Drop the connection at once: FIN without the closing chunk, or a TCP reset."""
        self.wfile.flush()
        self.close_connection = True
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
        else:
            self.connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state = Server(httpd)
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield state
    state.release.set()  # let any handler still waiting on the test finish
    httpd.shutdown()
    httpd.server_close()
    thread.join(WAIT)


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def ndjson(*messages: dict[str, Any]) -> list[bytes]:
    return [json.dumps(m).encode() + b"\n" for m in messages]


# -- 1. request/response round trip -----------------------------------------------------------

def test_request_round_trip_carries_method_target_headers_and_body(server: Server) -> None:
    server.routes["/api/things"] = lambda h: h.send_json(201, {"echo": h.state.seen[-1].body
                                                               .decode()})
    transport = HttpTransport(server.url, {"Authorization": "Bearer sekrit"})

    reply = transport.request("POST", "/api/things?a=1&b=two", b'{"name": "blog"}')

    assert reply.status == 201
    assert json.loads(reply.body) == {"echo": '{"name": "blog"}'}
    [seen] = server.seen
    assert seen.method == "POST"
    assert seen.path == "/api/things?a=1&b=two"
    assert seen.headers["authorization"] == "Bearer sekrit"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["content-length"] == str(len(b'{"name": "blog"}'))
    assert seen.headers["connection"] == "close"
    assert seen.body == b'{"name": "blog"}'


def test_request_without_body_sends_no_content_type(server: Server) -> None:
    server.routes["/api/health"] = lambda h: h.send_json(200, {"ok": True})

    reply = HttpTransport(server.url, {}).request("GET", "/api/health", None)

    assert (reply.status, json.loads(reply.body)) == (200, {"ok": True})
    [seen] = server.seen
    assert (seen.method, seen.path, seen.body) == ("GET", "/api/health", b"")
    assert "content-type" not in seen.headers
    assert "authorization" not in seen.headers


def test_request_reads_a_large_body_whole(server: Server) -> None:
    big = b"x" * 300_000
    server.routes["/api/big"] = lambda h: h.send_body(200, big)

    reply = HttpTransport(server.url, {}).request("GET", "/api/big", None)

    assert reply.body == big


def test_client_round_trip_sends_token_json_and_query(server: Server) -> None:
    server.routes["/api/instances"] = lambda h: h.send_json(
        200, {"got": json.loads(h.state.seen[-1].body)})
    client = Client(url=server.url + "/", token="tok-1")

    answer = client.request("POST", "/api/instances", json={"name": "blog", "n": 2},
                            params={"dry_run": True, "skip": None, "tag": "a b"})

    assert answer == {"got": {"name": "blog", "n": 2}}
    [seen] = server.seen
    assert seen.method == "POST"
    assert seen.path == "/api/instances?dry_run=true&tag=a+b"
    assert seen.headers["authorization"] == "Bearer tok-1"
    assert seen.headers["content-type"] == "application/json"


def test_client_returns_none_for_an_empty_answer(server: Server) -> None:
    server.routes["/api/instances/blog"] = lambda h: h.send_body(204, b"")

    assert Client(url=server.url, token="t").request("DELETE", "/api/instances/blog") is None
    assert server.paths() == ["DELETE /api/instances/blog"]


@pytest.mark.parametrize("suffix", ["/prefix", "/prefix/", "/deep/prefix"])
def test_url_path_prefix_is_put_before_every_target(server: Server, suffix: str) -> None:
    prefix = suffix.rstrip("/")
    server.routes[prefix + "/api/health"] = lambda h: h.send_json(200, {"ok": True})

    def logs(h: Handler) -> None:
        h.start_chunked()
        h.chunk(b"one\n")
        h.end_chunks()

    server.routes[prefix + "/api/logs"] = logs
    transport = HttpTransport(server.url + suffix, {})

    assert transport.request("GET", "/api/health?x=1", None).status == 200
    with transport.stream("/api/logs") as answer:
        assert answer.status == 200
        assert list(answer.lines) == ["one"]
    assert Client(url=server.url + suffix, token="t").request("GET", "/api/health") \
        == {"ok": True}
    assert server.paths() == [f"GET {prefix}/api/health?x=1", f"GET {prefix}/api/logs",
                              f"GET {prefix}/api/health"]


# -- 2. streaming -----------------------------------------------------------------------------

def test_stream_hands_over_lines_while_they_arrive(server: Server) -> None:
    first_read = threading.Event()
    sent_last = threading.Event()
    waited: list[bool] = []

    def events(h: Handler) -> None:
        h.start_chunked()
        h.chunk(b"first\n")
        waited.append(first_read.wait(WAIT))  # the test has the first line before the rest
        h.chunk(b"par")  # one line split over two chunks
        time.sleep(0.05)
        h.chunk(b"tial\r\n\n")
        time.sleep(0.05)
        sent_last.set()
        h.chunk(b"last")  # no newline before the end
        h.end_chunks()

    server.routes["/api/operations/op1/events"] = events
    transport = HttpTransport(server.url, {"Authorization": "Bearer s"})

    with transport.stream("/api/operations/op1/events") as answer:
        assert answer.status == 200
        lines = iter(answer.lines)
        assert next(lines) == "first"
        assert not sent_last.is_set(), "the first line only came once the whole answer had"
        first_read.set()
        rest = list(lines)

    assert rest == ["partial", "", "last"]
    assert all(isinstance(line, str) for line in rest)
    assert waited == [True]
    [seen] = server.seen
    assert (seen.method, seen.path) == ("GET", "/api/operations/op1/events")
    assert seen.headers["authorization"] == "Bearer s"


def test_stream_decodes_utf8_and_replaces_broken_bytes(server: Server) -> None:
    def logs(h: Handler) -> None:
        h.start_chunked(content_type="text/plain")
        h.chunk("grüße ✓\n".encode())
        h.chunk(b"bad \xff byte\n")
        h.end_chunks()

    server.routes["/api/logs"] = logs

    with HttpTransport(server.url, {}).stream("/api/logs") as answer:
        assert list(answer.lines) == ["grüße ✓", "bad \ufffd byte"]


def test_client_stream_lines_yields_lines_and_maps_an_error_status(server: Server) -> None:
    def logs(h: Handler) -> None:
        h.start_chunked(content_type="text/plain")
        for line in (b"a\n", b"b\n", b"c\n"):
            h.chunk(line)
        h.end_chunks()

    server.routes["/api/instances/blog/logs"] = logs
    client = Client(url=server.url, token="t")

    assert list(client.stream_lines("/api/instances/blog/logs", {"follow": True})) \
        == ["a", "b", "c"]
    assert server.paths() == ["GET /api/instances/blog/logs?follow=true"]

    with pytest.raises(ClientError) as caught:
        list(client.stream_lines("/api/instances/nope/logs"))
    assert (caught.value.code, caught.value.status) == ("not_found", 404)
    assert caught.value.message == "/api/instances/nope/logs"


# -- 3. connection refused --------------------------------------------------------------------

def test_refused_connection_is_a_refused_transport_error() -> None:
    transport = HttpTransport(f"http://127.0.0.1:{free_port()}", {})

    with pytest.raises(TransportError) as caught:
        transport.request("GET", "/api/health", None)
    assert caught.value.refused is True

    with pytest.raises(TransportError) as caught, transport.stream("/api/logs"):
        pass
    assert caught.value.refused is True


def test_refused_connection_through_client_is_server_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = Client(url=url, token="x")

    with pytest.raises(ClientError) as caught:
        client.request("GET", "/api/health")
    assert caught.value.code == "server_unavailable"
    assert url in caught.value.message

    with pytest.raises(ClientError) as caught:
        list(client.stream_lines("/api/operations/op1/events"))
    assert caught.value.code == "server_unavailable"
    assert url in caught.value.message


# -- 4. connection dropped --------------------------------------------------------------------

def test_stream_cut_mid_way_raises_transport_error(server: Server) -> None:
    def events(h: Handler) -> None:
        h.start_chunked()
        h.chunk(b'{"kind": "state"}\n')
        h.cut()

    server.routes["/api/events"] = events
    got: list[str] = []

    with pytest.raises(TransportError) as caught, \
            HttpTransport(server.url, {}).stream("/api/events") as answer:
        assert answer.status == 200
        for line in answer.lines:
            got.append(line)
    assert got == ['{"kind": "state"}']
    assert caught.value.refused is False
    assert "broke off" in str(caught.value)


def test_stream_cut_inside_a_chunk_raises_transport_error(server: Server) -> None:
    def events(h: Handler) -> None:
        h.start_chunked()
        h.wfile.write(b"40\r\none\n")  # the chunk announces 64 bytes, 4 come
        h.cut()

    server.routes["/api/events"] = events
    got: list[str] = []

    with pytest.raises(TransportError) as caught, \
            HttpTransport(server.url, {}).stream("/api/events") as answer:
        for line in answer.lines:
            got.append(line)
    assert got == ["one"]
    assert caught.value.refused is False
    assert "broke off" in str(caught.value)


def test_stream_reset_mid_way_raises_transport_error(server: Server) -> None:
    def events(h: Handler) -> None:
        h.start_chunked()
        h.chunk(b"one\n")
        h.cut(reset=True)

    server.routes["/api/events"] = events

    with pytest.raises(TransportError) as caught, \
            HttpTransport(server.url, {}).stream("/api/events") as answer:
        list(answer.lines)
    assert caught.value.refused is False


def test_client_stream_lines_cut_mid_way_is_a_plain_client_error(server: Server) -> None:
    def events(h: Handler) -> None:
        h.start_chunked()
        h.chunk(b"one\n")
        h.chunk(b"two\n")
        h.cut()

    server.routes["/api/operations/op1/events"] = events
    client = Client(url=server.url, token="t")
    got: list[str] = []

    with pytest.raises(ClientError) as caught:
        for line in client.stream_lines("/api/operations/op1/events"):
            got.append(line)
    assert got == ["one", "two"]
    assert caught.value.code != "server_unavailable"
    assert caught.value.status == 0
    assert server.url in caught.value.message
    assert isinstance(caught.value.__cause__, TransportError)


def test_body_cut_short_raises_transport_error(server: Server) -> None:
    def short(h: Handler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", "100")
        h.end_headers()
        h.wfile.write(b'{"partial": ')
        h.cut()

    server.routes["/api/short"] = short

    with pytest.raises(TransportError) as caught:
        HttpTransport(server.url, {}).request("GET", "/api/short", None)
    assert caught.value.refused is False

    with pytest.raises(ClientError) as client_caught:
        Client(url=server.url, token="t").request("GET", "/api/short")
    assert client_caught.value.code != "server_unavailable"


def test_server_closing_without_an_answer_raises_transport_error(server: Server) -> None:
    server.routes["/api/silent"] = lambda h: h.cut()

    with pytest.raises(TransportError) as caught:
        HttpTransport(server.url, {}).request("GET", "/api/silent", None)
    assert caught.value.refused is False

    with pytest.raises(TransportError) as caught, \
            HttpTransport(server.url, {}).stream("/api/silent"):
        pass
    assert caught.value.refused is False

    with pytest.raises(ClientError) as client_caught:
        Client(url=server.url, token="t").request("GET", "/api/silent")
    assert client_caught.value.code == "error"


# -- 5. HTTP errors through Client ------------------------------------------------------------

def test_api_error_is_mapped_to_its_code_message_and_details(server: Server) -> None:
    server.routes["/api/instances/blog"] = lambda h: h.send_json(
        409, {"error": {"code": "conflict", "message": "busy", "details": {"x": 1}}})

    with pytest.raises(ClientError) as caught:
        Client(url=server.url, token="t").request("POST", "/api/instances/blog", json={})
    err = caught.value
    assert (err.code, err.status, err.message, err.details) == ("conflict", 409, "busy",
                                                                {"x": 1})
    assert str(err) == "busy"


def test_non_json_error_mentions_the_status(server: Server) -> None:
    server.routes["/api/health"] = lambda h: h.send_body(502, b"<html>Bad Gateway</html>",
                                                         "text/html")

    with pytest.raises(ClientError) as caught:
        Client(url=server.url, token="t").request("GET", "/api/health")
    assert caught.value.status == 502
    assert "HTTP 502" in caught.value.message
    assert "Bad Gateway" in caught.value.message


def test_non_json_success_is_reported(server: Server) -> None:
    server.routes["/api/health"] = lambda h: h.send_body(200, b"hello, not json")

    with pytest.raises(ClientError) as caught:
        Client(url=server.url, token="t").request("GET", "/api/health")
    assert "did not answer with JSON" in caught.value.message
    assert server.url in caught.value.message


# -- 6. bad URLs ------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["ftp://x", "http://", "https://", "127.0.0.1:8080", "",
                                 "http://host:99999", "http://host:port"])
def test_bad_url_is_refused(url: str) -> None:
    with pytest.raises(TransportError):
        HttpTransport(url, {})


def test_good_urls_are_parsed() -> None:
    plain = HttpTransport("http://example.test", {})
    assert (plain.tls, plain.host, plain.port, plain.prefix) == (False, "example.test", 80, "")
    tls = HttpTransport("https://example.test:8443/hub/", {"A": "b"})
    assert (tls.tls, tls.host, tls.port, tls.prefix) == (True, "example.test", 8443, "/hub")
    assert tls.headers == {"A": "b", "Connection": "close"}


def test_client_with_a_bad_url_fails_with_usage() -> None:
    with pytest.raises(ClientError) as caught:
        Client(url="ftp://x", token="t").request("GET", "/api/health")
    assert caught.value.code == "usage"
    assert "ftp://x" in caught.value.message


# -- 7. query encoding ------------------------------------------------------------------------

def test_query_encodes_booleans_drops_none_and_quotes_values() -> None:
    assert query({"a": True, "b": False, "c": None, "d": 3, "e": "x y&z=1/ü"}) \
        == "?a=true&b=false&d=3&e=x+y%26z%3D1%2F%C3%BC"


@pytest.mark.parametrize("params", [None, {}, {"only": None}])
def test_query_of_nothing_is_empty(params: dict[str, Any] | None) -> None:
    assert query(params) == ""


# -- 8. run_operation over the wire -----------------------------------------------------------

OP_DONE = {"id": "op1", "state": "succeeded", "kind": "install", "instance": "blog",
           "progress": 100}
INSTANCE = {"name": "blog", "state": "running"}


def test_run_operation_follows_the_event_stream(server: Server) -> None:
    lines = ndjson(
        {"kind": "state", "data": {"op_kind": "install", "progress": 0, "step": "queued"}},
        {"kind": "pull", "data": {"image": "nginx:1", "percent": 42.5}},
        {"kind": "step", "data": {"op_kind": "install", "progress": 60, "step": "start"}},
        {"kind": "result", "data": {"operation": OP_DONE, "instance": INSTANCE}},
    )

    def events(h: Handler) -> None:
        h.start_chunked()
        for line in lines[:2]:
            h.chunk(line)
        h.chunk(b"\n")  # blank lines (keep-alives) are skipped
        time.sleep(0.02)
        for line in lines[2:]:
            h.chunk(line)
        h.end_chunks()

    server.routes["/api/operations/op1/events"] = events
    client = Client(url=server.url, token="t")
    started: list[bool] = []

    def start() -> dict[str, Any]:
        started.append(True)
        return {"operation": {"id": "op1", "state": "running"}}

    accepted, op, instance = run_operation(client, start, quiet=True)

    assert started == [True]
    assert accepted == {"operation": {"id": "op1", "state": "running"}}
    assert op == OP_DONE
    assert instance == INSTANCE
    assert server.paths() == ["GET /api/operations/op1/events"]  # no polling


def test_run_operation_polls_when_the_stream_breaks_off(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operations, "POLL_INTERVAL", 0.01)
    polls: list[int] = []

    def events(h: Handler) -> None:
        h.start_chunked()
        h.chunk(ndjson({"kind": "state", "data": {"op_kind": "install", "progress": 10}})[0])
        h.cut()

    def record(h: Handler) -> None:
        polls.append(1)
        state = "running" if len(polls) < 3 else "succeeded"
        h.send_json(200, {**OP_DONE, "state": state})

    server.routes["/api/operations/op1/events"] = events
    server.routes["/api/operations/op1"] = record
    server.routes["/api/instances/blog"] = lambda h: h.send_json(200, INSTANCE)
    client = Client(url=server.url, token="t")

    accepted, op, instance = run_operation(
        client, lambda: {"operation": {"id": "op1"}}, quiet=True)

    assert accepted == {"operation": {"id": "op1"}}
    assert op == OP_DONE
    assert instance == INSTANCE
    assert server.paths() == ["GET /api/operations/op1/events"] \
        + ["GET /api/operations/op1"] * 3 + ["GET /api/instances/blog"]


def test_run_operation_polls_without_instance_after_a_failure(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operations, "POLL_INTERVAL", 0.01)
    failed = {**OP_DONE, "state": "failed"}

    def events(h: Handler) -> None:
        h.start_chunked()
        h.chunk(b'{"kind": "sta')  # cut inside a line
        h.cut(reset=True)

    server.routes["/api/operations/op1/events"] = events
    server.routes["/api/operations/op1"] = lambda h: h.send_json(200, failed)

    _, op, instance = run_operation(Client(url=server.url, token="t"),
                                    lambda: {"operation": {"id": "op1"}}, quiet=True)

    assert op == failed
    assert instance is None
    assert "GET /api/instances/blog" not in server.paths()


def test_run_operation_raises_an_api_error_of_the_event_stream(server: Server) -> None:
    server.routes["/api/operations/op1/events"] = lambda h: h.send_json(
        403, {"error": {"code": "forbidden", "message": "not yours"}})

    with pytest.raises(ClientError) as caught:
        run_operation(Client(url=server.url, token="t"),
                      lambda: {"operation": {"id": "op1"}}, quiet=True)
    assert (caught.value.code, caught.value.status) == ("forbidden", 403)
    assert server.paths() == ["GET /api/operations/op1/events"]


# -- https: verified against the trust store, with a clear error when it does not verify -----

@pytest.fixture
def tls_server(server: Server, tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """The same server behind TLS with a fresh self-signed certificate for 127.0.0.1."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    server.routes["/api/health"] = lambda h: h.send_json(200, {"status": "ok"})
    yield server, cert


def test_https_is_verified_against_the_trust_store(tls_server: tuple[Server, Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    server, cert = tls_server
    url = server.url.replace("http://", "https://")
    with pytest.raises(ClientError) as refused:
        Client(url=url, token="t").request("GET", "/api/health")
    assert "TLS with 127.0.0.1 failed" in refused.value.message
    assert "CERTIFICATE_VERIFY_FAILED" in refused.value.message
    assert refused.value.code != "server_unavailable"
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now the certificate is trusted
    assert Client(url=url, token="t").request("GET", "/api/health") == {"status": "ok"}
    assert server.seen[-1].headers["authorization"] == "Bearer t"


def test_run_operation_skips_pings_and_polls_when_the_stream_goes_silent(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(operations, "POLL_INTERVAL", 0.01)
    monkeypatch.setattr(operations, "STREAM_SILENCE", 0.2)

    def events(h: Handler) -> None:  # alive for a while, then silent: a dead connection
        h.start_chunked()
        for line in ndjson({"kind": "state", "data": {"op_kind": "install", "progress": 10}},
                           {"kind": "ping", "data": {}}):
            h.chunk(line)
        server.release.wait(WAIT)

    server.routes["/api/operations/op1/events"] = events
    server.routes["/api/operations/op1"] = lambda h: h.send_json(200, OP_DONE)
    server.routes["/api/instances/blog"] = lambda h: h.send_json(200, INSTANCE)
    started = time.monotonic()
    _, op, instance = run_operation(Client(url=server.url, token="t"),
                                    lambda: {"operation": {"id": "op1"}}, quiet=True)
    assert (op, instance) == (OP_DONE, INSTANCE)
    assert time.monotonic() - started < 15  # not the handler's WAIT: the silence was noticed
    assert server.paths()[1:] == ["GET /api/operations/op1", "GET /api/instances/blog"]


@pytest.mark.parametrize("token", ["sht_secret\n", "sht_sec ret", "sht_é"])
def test_a_malformed_token_is_a_usage_error_that_never_shows_it(token: str) -> None:
    with pytest.raises(ClientError) as caught:
        Client(url="http://127.0.0.1:9", token=token + "x").request("GET", "/api/health")
    assert caught.value.code == "usage"
    assert "sht_" not in caught.value.message
