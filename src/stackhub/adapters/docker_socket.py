"""HTTP to the engine's unix socket: the request, the answer's head, one wording of failures."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

from stackhub.errors import EngineUnavailable


def unreachable(reason: OSError | str) -> EngineUnavailable:
    """Word an engine that cannot be connected to (or answers its ping wrongly)."""
    if isinstance(reason, OSError):
        reason = reason.strerror or str(reason)
    return EngineUnavailable(f"the Docker engine is not reachable; is dockerd running? ({reason})")


def hung(detail: str = "") -> EngineUnavailable:
    """Word an engine that does not answer in time (a hung, e.g. SIGSTOPped, dockerd)."""
    return EngineUnavailable(f"the Docker engine does not answer{f' ({detail})' if detail else ''}"
                             "; is dockerd hung?")


def lost(detail: str = "") -> EngineUnavailable:
    """Word a connection that broke off, or an answer that is not HTTP."""
    return EngineUnavailable(f"lost the connection to the Docker engine"
                             f"{f' ({detail})' if detail else ''}; is dockerd running?")


def request(method: str, target: str, *, body: bytes | None = None, version: str = "1.0",
            headers: tuple[str, ...] = ()) -> bytes:
    """Return one HTTP request (HTTP/1.0: the engine closes the connection after its answer)."""
    lines = [f"{method} {target} HTTP/{version}", "Host: docker"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join([*lines, *headers]) + "\r\n\r\n").encode() + (body or b"")


def status(head: bytes) -> tuple[int, str]:
    """Return an answer head's status code (0 if it is not HTTP) and its status line."""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ", 2)
    ok = line.startswith("HTTP/1.") and len(parts) > 1 and parts[1].isdigit()
    return (int(parts[1]) if ok else 0), line


def headers(head: bytes) -> dict[str, str]:
    """Return an answer head's headers, names in lower case."""
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines) if name}


def connect(path: str, timeout: float) -> socket.socket:
    """Connect to the engine's socket, `timeout` bounding each operation on it."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(path)
    except TimeoutError as err:  # a full backlog: the engine accepts no connection
        conn.close()
        raise hung(f"no connection within {timeout:g} s") from err
    except OSError as err:
        conn.close()
        raise unreachable(err) from err
    return conn


def first_reply(path: str, data: bytes, timeout: float) -> bytes:
    """Send `data` and return the answer's first bytes, `timeout` bounding the whole exchange.

    No generator and no body: the engine probe pings every 0.25 s with this.
    """
    deadline = time.monotonic() + timeout
    with connect(path, timeout) as conn:
        try:
            conn.sendall(data)
            conn.settimeout(max(deadline - time.monotonic(), 0.001))
            return conn.recv(65536)
        except TimeoutError as err:
            raise hung(f"no reply within {timeout:g} s") from err
        except OSError as err:
            raise lost() from err


def exchange(path: str, data: bytes, timeout: float) -> Iterator[bytes]:
    """Send `data`, yield the answer's bytes as they arrive until the engine closes."""
    with connect(path, timeout) as conn:
        try:
            conn.sendall(data)
            while chunk := conn.recv(65536):
                yield chunk
        except TimeoutError as err:  # a hung (e.g. SIGSTOPped) dockerd
            raise hung() from err
        except OSError as err:
            raise lost() from err


def split_head(chunks: Iterator[bytes]) -> tuple[bytes, Iterator[bytes]]:
    """Read `chunks` up to the end of the head; return it and the body's chunks (streamed).

    An answer closed before a blank line is all head.
    """
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        if b"\r\n\r\n" in buffer:
            break
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head, _body(rest, chunks)


def _body(rest: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    if rest:
        yield rest
    yield from chunks


def dechunk(body: bytes) -> bytes:
    """Decode a complete chunked transfer-encoded body."""
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return out


def message(body: bytes) -> str:
    """Return the engine's error message of an answer body (its JSON `message`, else the text)."""
    try:
        answer = json.loads(body) if body.strip() else None
    except ValueError:
        answer = None
    text = (str(answer.get("message") or "") if isinstance(answer, dict) else "") \
        or body.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:300] if text else ""
