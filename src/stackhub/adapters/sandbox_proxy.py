"""The host end of the store-script sandbox's compose proxy: a unix socket and a compose call.

A hook in the sandbox has no Docker socket and no network. For the few commands StackHub lets
it run on its own app (apps/hookproxy.py decides which), the sandbox's ``app``/``docker``
emulations send their argument list (and, for ``exec``/``run``, up to 1 MiB of stdin) as one
JSON line over a unix socket bound read-only into the sandbox; StackHub answers outside the
sandbox with the exit code and capped output. One request at a time, a fixed number per run,
each with a time limit; the socket's folder is 0700 and removed after the run.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stackhub.adapters.compose import COMPOSE_FILE, ENV_FILE, death_pact

SOCKET_NAME = "sock"
TARGET = "/stackhub-proxy"
"""Where the socket's folder is bound in the sandbox."""
MAX_REQUEST = 3 * 1024 * 1024
MAX_STDIN = 1024 * 1024
MAX_ARGS = 256
MAX_ARG = 64 * 1024
OUT_LIMIT = 1024 * 1024
ERR_LIMIT = 64 * 1024
_ENV_PASSED = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH",
               "DOCKER_TLS_VERIFY", "XDG_RUNTIME_DIR")


@dataclass(frozen=True)
class Reply:
    """What the sandbox's command prints and returns."""

    code: int
    stdout: bytes = b""
    stderr: bytes = b""


Handler = Callable[[list[str], bytes, float], Reply]
"""(argument list, stdin, seconds left) -> reply."""


class ProxyServer:
    """Serve one sandbox run's requests on a unix socket, serially, within limits."""

    def __init__(self, handler: Handler, *, deadline: float, max_calls: int = 500) -> None:
        """Keep the handler; `deadline` is a time.monotonic() after which nothing is served."""
        self.handler = handler
        self.deadline = deadline
        self.max_calls = max_calls
        self.calls = 0
        self.folder = Path(tempfile.mkdtemp(prefix="stackhub-hp-"))
        self.path = self.folder / SOCKET_NAME
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(self.path))
        self.path.chmod(0o600)
        self._sock.listen(4)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> ProxyServer:
        """Start serving."""
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop serving and remove the socket's folder."""
        self._stop.set()
        self._thread.join(5.0)
        self._sock.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(10.0)
        reply = self._reply(read_line(conn))
        body = {"code": reply.code,
                "stdout": base64.b64encode(reply.stdout[:OUT_LIMIT]).decode(),
                "stderr": base64.b64encode(reply.stderr[:ERR_LIMIT]).decode()}
        conn.settimeout(30.0)
        conn.sendall(json.dumps(body).encode() + b"\n")

    def _reply(self, raw: bytes | None) -> Reply:
        if raw is None:
            return refused("the request is over 3 MiB or incomplete")
        try:
            request = json.loads(raw)
            argv, stdin = request["argv"], base64.b64decode(request.get("stdin") or "")
        except (ValueError, KeyError, TypeError, binascii.Error):
            return refused("the request is not valid")
        if not isinstance(argv, list) or not argv or len(argv) > MAX_ARGS or not all(
                isinstance(a, str) and len(a) <= MAX_ARG and "\0" not in a for a in argv):
            return refused(f"the command must be 1 to {MAX_ARGS} arguments of text")
        if len(stdin) > MAX_STDIN:
            return refused("the command's input is over 1 MiB")
        self.calls += 1
        if self.calls > self.max_calls:
            return refused(f"a hook may make at most {self.max_calls} requests per run")
        left = self.deadline - time.monotonic()
        if left <= 1.0:
            return refused("the sandbox's time limit is reached")
        return self.handler(argv, stdin, left)


def read_line(conn: socket.socket) -> bytes | None:
    """Read one newline-terminated request of at most MAX_REQUEST bytes (None if not)."""
    data = bytearray()
    while b"\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
        if len(data) > MAX_REQUEST:
            return None
    return bytes(data.split(b"\n", 1)[0])


def refused(message: str) -> Reply:
    """Return a refusal the sandbox's command prints on stderr (exit code 126)."""
    return Reply(126, b"", f"stackhub: refused: {message}\n".encode())


def compose_call(compose_argv: list[str], project: str, project_dir: Path, args: list[str], *,
                 stdin: bytes, timeout: float, project_files: list[Path] | None = None) -> Reply:
    """Run one compose command on StackHub's own project files (an argument list, no shell).

    The project, its files (`project_files`, by default compose.yaml) and env file are always
    StackHub's own: the caller only chooses the verb and its checked arguments.
    """
    files: list[str] = []
    for file in project_files or [project_dir / COMPOSE_FILE]:
        files += ["-f", str(file)]
    command = [*death_pact(), *compose_argv, "--ansi", "never", "--progress", "plain", "-p",
               project, "--project-directory", str(project_dir), *files, "--env-file",
               str(project_dir / ENV_FILE), *args]
    env = {k: v for k, v in os.environ.items() if k in _ENV_PASSED}
    try:
        done = subprocess.run(command, input=stdin, capture_output=True, env=env,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Reply(124, b"", f"stackhub: stopped after {timeout:.0f} s\n".encode())
    except OSError as err:
        return Reply(127, b"", f"stackhub: compose could not run: {err}\n".encode())
    return Reply(done.returncode, done.stdout[:OUT_LIMIT], done.stderr[-ERR_LIMIT:])
