"""Processes in containers through the engine's exec API, over the raw HTTP upgrade.

The docker SDK's exec socket is read-only and blocking, so this adapter speaks HTTP/1.1 to the
engine's unix socket itself with asyncio: create the exec, start it with ``Upgrade: tcp`` and
keep the connection as a byte pipe (stdin one way; output the other, raw with a TTY and in the
engine's 8-byte-header frames without), resize through ``POST /exec/{id}/resize``.

The engine never ends an exec when its client goes away (it sends no SIGHUP; moby PR #9994),
so `kill` reads the exec's host PID from ``GET /exec/{id}/json`` and sends SIGKILL to it, its
descendants and every process of its session (a TTY exec is a session leader). That needs the
engine's processes to be visible in this PID namespace, as they are when StackHub runs as root
next to dockerd.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackhub.adapters import docker_socket
from stackhub.errors import EngineError, EngineUnavailable, NotFound

DEFAULT_SOCKET = "/var/run/docker.sock"
STDOUT = 1
STDERR = 2
_HEADER_LIMIT = 65536
_BODY_LIMIT = 4 * 1024 * 1024


def socket_path() -> str:
    """Return the engine's unix socket: DOCKER_HOST when it names one, else the default."""
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host[len("unix://"):]
    return DEFAULT_SOCKET


@dataclass(frozen=True)
class ExecState:
    """What the engine says about one exec."""

    running: bool
    exit_code: int | None
    pid: int


class ExecStream:
    """A started exec: write stdin, read output chunks as (stream, bytes), close stdin."""

    def __init__(self, exec_id: str, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, *, tty: bool, pending: bytes = b"") -> None:
        """Hold the upgraded connection; `pending` is output read along with the headers."""
        self.id = exec_id
        self.tty = tty
        self._reader = reader
        self._writer = writer
        self._pending = pending

    async def _read(self, size: int) -> bytes:
        if self._pending:
            chunk, self._pending = self._pending[:size], self._pending[size:]
            return chunk
        return await self._reader.read(size)

    async def _read_exactly(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = await self._read(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    async def read(self) -> tuple[int, bytes] | None:
        """Return the next output chunk with its stream (1 stdout, 2 stderr); None at the end."""
        try:
            if self.tty:
                chunk = await self._read(65536)
                return (STDOUT, chunk) if chunk else None
            while True:
                header = await self._read_exactly(8)
                if header is None:
                    return None
                size = int.from_bytes(header[4:8], "big")
                payload = await self._read_exactly(size) if size else b""
                if payload is None:
                    return None
                if payload:
                    return (STDERR if header[0] == STDERR else STDOUT, payload)
        except (ConnectionError, OSError):
            return None

    async def write(self, data: bytes) -> None:
        """Send bytes to the process's stdin."""
        if self._writer.is_closing():
            return
        self._writer.write(data)
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.drain()

    def close_stdin(self) -> None:
        """Half-close the connection: the process reads end of file."""
        with contextlib.suppress(OSError, RuntimeError):
            if self._writer.can_write_eof() and not self._writer.is_closing():
                self._writer.write_eof()

    async def close(self) -> None:
        """Close the connection (the process is not ended by this: see EngineExec.kill)."""
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    code, status = docker_socket.status(head)
    if code == 0:
        raise docker_socket.lost(f"it answered {status[:80]!r}")
    return code, docker_socket.headers(head)


class EngineExec:
    """Create, start, resize, inspect and end execs through the engine's unix socket."""

    def __init__(self, socket: str | None = None) -> None:
        """Remember the socket; connect per call."""
        self.socket = socket or socket_path()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_unix_connection(self.socket, limit=_HEADER_LIMIT)
        except OSError as err:
            raise docker_socket.unreachable(err) from err

    async def _request(self, method: str, path: str,
                       payload: dict[str, Any] | None = None) -> tuple[int, dict[str, str], bytes]:
        body = json.dumps(payload).encode() if payload is not None else None
        if body is None and method == "POST":
            body = b""
        reader, writer = await self._connect()
        try:
            writer.write(docker_socket.request(method, path, body=body, version="1.1",
                                               headers=("Connection: close",)))
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status, headers = _parse_head(head[:-4])
            if method == "HEAD":
                return status, headers, b""
            if "content-length" in headers:
                data = await reader.readexactly(min(int(headers["content-length"]), _BODY_LIMIT))
            else:
                data = await reader.read(_BODY_LIMIT)
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    data = docker_socket.dechunk(data)
            return status, headers, data
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as err:
            raise docker_socket.lost(f"the answer broke off: {err}") from err
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    @staticmethod
    def _raise(status: int, body: bytes, what: str) -> None:
        message = docker_socket.message(body)
        if status == 404:
            raise NotFound(f"{what}: {message}")
        if status == 409:
            raise EngineError(f"{what}: {message} (is the container running?)")
        if status >= 400:
            raise EngineError(f"{what}: the engine answered {status}: {message}")

    async def exists(self, container: str, path: str) -> bool:
        """Say whether `path` exists in the container's file system (no process started)."""
        quoted = urllib.parse.quote(container, safe="")
        status, _, _ = await self._request(
            "HEAD", f"/containers/{quoted}/archive?path={urllib.parse.quote(path, safe='')}")
        return status == 200

    async def create(self, container: str, cmd: list[str], *, tty: bool,
                     env: list[str] | None = None) -> str:
        """Create an exec of `cmd` in a running container; return its id."""
        quoted = urllib.parse.quote(container, safe="")
        status, _, body = await self._request("POST", f"/containers/{quoted}/exec", {
            "AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "Tty": tty,
            "Cmd": cmd, "Env": env or []})
        self._raise(status, body, f"cannot run a command in {container}")
        return str(json.loads(body)["Id"])

    async def start(self, exec_id: str, *, tty: bool, rows: int | None = None,
                    cols: int | None = None) -> ExecStream:
        """Start an exec with the raw upgrade and return its stream."""
        payload: dict[str, Any] = {"Detach": False, "Tty": tty}
        if tty and rows and cols:
            payload["ConsoleSize"] = [rows, cols]
        body = json.dumps(payload).encode()
        reader, writer = await self._connect()
        try:
            writer.write(docker_socket.request(
                "POST", f"/exec/{exec_id}/start", body=body, version="1.1",
                headers=("Connection: Upgrade", "Upgrade: tcp")))
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status, headers = _parse_head(head[:-4])
            if status not in (101, 200):
                data = b""
                if "content-length" in headers:
                    data = await reader.readexactly(
                        min(int(headers["content-length"]), _BODY_LIMIT))
                self._raise(status if status >= 400 else 500, data, "cannot start the command")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as err:
            writer.close()
            raise docker_socket.lost(f"the answer broke off: {err}") from err
        except BaseException:
            writer.close()
            raise
        return ExecStream(exec_id, reader, writer, tty=tty)

    async def resize(self, exec_id: str, *, rows: int, cols: int) -> None:
        """Set the exec's terminal size (ignored by the engine once the process ended)."""
        status, _, body = await self._request(
            "POST", f"/exec/{exec_id}/resize?h={int(rows)}&w={int(cols)}")
        if status >= 400 and status not in (404, 409):
            self._raise(status, body, "cannot resize the terminal")

    async def inspect(self, exec_id: str) -> ExecState:
        """Return whether the exec runs, its exit code and its host PID."""
        status, _, body = await self._request("GET", f"/exec/{exec_id}/json")
        self._raise(status, body, "cannot inspect the command")
        raw = json.loads(body)
        code = raw.get("ExitCode")
        return ExecState(running=bool(raw.get("Running")),
                         exit_code=None if code is None else int(code),
                         pid=int(raw.get("Pid") or 0))

    async def wait_exit(self, exec_id: str, timeout: float = 5.0) -> int | None:
        """Wait for the engine to record the exec's exit code (just after its output ends)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            state = await self.inspect(exec_id)
            if not state.running:
                return state.exit_code
            if asyncio.get_running_loop().time() > deadline:
                return None
            await asyncio.sleep(0.05)

    async def kill(self, exec_id: str) -> int:
        """End the exec's process, its descendants and its session; return how many died."""
        try:
            state = await self.inspect(exec_id)
        except (NotFound, EngineError, EngineUnavailable):
            return 0
        if not state.running or state.pid <= 1:
            return 0
        return await asyncio.to_thread(kill_tree, state.pid)

    async def run(self, container: str, cmd: list[str], *, timeout: float,
                  keep: int = 4096) -> tuple[int | None, str]:
        """Run `cmd` (an argument list) in a running container without a TTY, stdin closed.

        Return its exit code (None if the engine did not record one) and the last `keep`
        bytes of its output. On timeout the process is killed and TimeoutError raised.
        """
        exec_id = await self.create(container, cmd, tty=False)
        stream = await self.start(exec_id, tty=False)
        tail = bytearray()

        async def drain() -> None:
            while (chunk := await stream.read()) is not None:
                tail.extend(chunk[1])
                del tail[:-keep]

        try:
            stream.close_stdin()
            await asyncio.wait_for(drain(), timeout)
        except BaseException:
            with contextlib.suppress(NotFound, EngineError, EngineUnavailable):
                await self.kill(exec_id)
            raise
        finally:
            await stream.close()
        return await self.wait_exit(exec_id), tail.decode(errors="replace")


def _stat(pid: int) -> tuple[int, int] | None:
    """Return (parent pid, session id) of a live process, or None if it is gone (or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), int(fields[3])


def kill_tree(root: int) -> int:
    """SIGKILL `root`, every descendant and every process of its session; return the count."""
    table: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            found = _stat(int(entry.name))
            if found is not None:
                table[int(entry.name)] = found
    doomed = {pid for pid, (_, sid) in table.items() if sid == root}
    if root in table:
        doomed.add(root)
    grew = True
    while grew:
        children = {pid for pid, (ppid, _) in table.items() if ppid in doomed} - doomed
        doomed |= children
        grew = bool(children)
    killed = 0
    for pid in doomed:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            killed += 1
    return killed
