"""Carry the CLI's API calls over HTTP/1.1 with the standard library.

The CLI starts for every command, so what it loads is paid on every call: ``http.client``
loads in about a tenth of the time of httpx (see docs/performance.md). One connection is opened
per request, which keeps the code free of stale keep-alive handling.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

CONNECT_TIMEOUT = 30.0
READ_TIMEOUT = 600.0


class TransportError(Exception):
    """The server could not be reached or the exchange broke off; `refused` if nobody listens."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        """Keep whether the connection was refused (no server) or failed otherwise."""
        super().__init__(message)
        self.refused = refused


@dataclass
class Reply:
    """A whole response: status and body."""

    status: int
    body: bytes


@dataclass
class Stream:
    """A response read line by line; `rest` reads whatever is left (for error bodies)."""

    status: int
    lines: Iterator[str]
    rest: Any  # Callable[[], bytes]


class Transport(Protocol):
    """What the API client needs from the wire (unit tests plug in an in-process app)."""

    def request(self, method: str, target: str, body: bytes | None) -> Reply:
        """Send one request to `target` (path and query) and read the whole answer."""

    def stream(self, target: str, read_timeout: float | None = None) -> Any:
        """Send a GET and hand the answer over as lines (a context manager of Stream)."""


class HttpTransport:
    """Talk to one server by URL (http or https), with fixed headers such as Authorization."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        """Parse the URL; refuse anything but http(s) with a host."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(f"{url!r} is not an http:// or https:// URL")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        try:
            self.port = parts.port or (443 if self.tls else 80)
        except ValueError as err:
            raise TransportError(f"{url!r} has an invalid port") from err
        self.prefix = parts.path.rstrip("/")
        self.headers = {**headers, "Connection": "close"}

    def _open(self, timeout: float | None) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self.tls:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=CONNECT_TIMEOUT,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=CONNECT_TIMEOUT)
        try:
            conn.connect()
        except ConnectionRefusedError as err:
            raise TransportError("connection refused", refused=True) from err
        except socket.gaierror as err:
            raise TransportError(f"cannot resolve {self.host}: {err.strerror}",
                                 refused=True) from err
        except ssl.SSLError as err:
            raise TransportError(f"TLS with {self.host} failed: {err.reason}") from err
        except OSError as err:
            raise TransportError(f"cannot connect to {self.host}:{self.port}: "
                                 f"{err.strerror or err}") from err
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _send(self, conn: http.client.HTTPConnection, method: str, target: str,
              body: bytes | None) -> http.client.HTTPResponse:
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, self.prefix + target, body=body, headers=headers)
            return conn.getresponse()
        except ValueError as err:  # a header value http.client refuses; never echo it
            raise TransportError("a request header is not valid (check the token)") from err
        except TimeoutError as err:
            raise TransportError(f"no answer within {READ_TIMEOUT:.0f} s") from err
        except (http.client.HTTPException, OSError) as err:
            raise TransportError(f"the connection broke off: {err or type(err).__name__}") \
                from err

    def request(self, method: str, target: str, body: bytes | None) -> Reply:
        """Send one request and read the whole answer."""
        conn = self._open(READ_TIMEOUT)
        try:
            response = self._send(conn, method, target, body)
            try:
                return Reply(response.status, response.read())
            except (http.client.HTTPException, OSError) as err:
                raise TransportError(f"the answer broke off: {err or type(err).__name__}") \
                    from err
        finally:
            conn.close()

    @contextmanager
    def stream(self, target: str, read_timeout: float | None = None) -> Iterator[Stream]:
        """Send a GET and yield its answer as lines; no read timeout unless given (logs may
        be quiet for hours; operation streams send a ping every few seconds)."""
        conn = self._open(read_timeout)
        try:
            response = self._send(conn, "GET", target, None)
            yield Stream(response.status, self._lines(response), lambda: self._rest(response))
        finally:
            conn.close()

    @staticmethod
    def _rest(response: http.client.HTTPResponse) -> bytes:
        try:
            return response.read()
        except (http.client.HTTPException, OSError) as err:
            raise TransportError(f"the answer broke off: {err or type(err).__name__}") from err

    @staticmethod
    def _lines(response: http.client.HTTPResponse) -> Iterator[str]:
        """Split the body into lines as it arrives; a body cut short is an error.

        ``read1`` is used rather than iterating the response, which treats a chunked body that
        stops between chunks as a normal end.
        """
        pending = b""
        try:
            while chunk := response.read1(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    yield raw.decode("utf-8", errors="replace").rstrip("\r")
            if response.length:  # a Content-Length body that ended early
                raise http.client.IncompleteRead(pending, response.length)
        except TimeoutError as err:
            raise TransportError("the stream went quiet for too long") from err
        except (http.client.HTTPException, OSError) as err:
            raise TransportError(f"the stream broke off: {err or type(err).__name__}") from err
        if pending:
            yield pending.decode("utf-8", errors="replace").rstrip("\r")
