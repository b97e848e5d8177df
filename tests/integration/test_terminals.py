"""Container terminals against the real engine: CLI exec with exit codes, streams and stdin,
a shell over the websocket, processes ended at disconnect, resize floods."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from .conftest import STACKHUB, Server, docker

COMPOSE = """\
services:
  web:
    image: stackhub-test/web:1
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    stop_grace_period: 1s
  worker:
    image: stackhub-test/web:1
    command: ["sleep", "100000"]
    stop_grace_period: 1s
"""


@pytest.fixture(scope="module")
def term_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module (starting one per test is slow on a busy machine)."""
    srv = Server(tmp_path_factory.mktemp("terminals") / "data")
    try:
        srv.start()
    except AssertionError:  # slow to start on a loaded machine: give it longer if it lives
        if srv.proc is None or srv.proc.poll() is not None:
            raise
        deadline = time.monotonic() + 120
        while server_down(srv):
            assert time.monotonic() < deadline, srv.log.read_text()[-2000:]
            assert srv.proc.poll() is None, srv.log.read_text()[-2000:]
            time.sleep(0.5)
    try:
        yield srv
    finally:
        srv.stop()
        srv.cleanup_engine()


def server_down(srv: Server) -> bool:
    """Say whether the server does not answer its health check yet."""
    try:
        return httpx.get(f"{srv.url}/api/health", timeout=2).status_code != 200
    except httpx.HTTPError:
        return True


@pytest.fixture(scope="module")
def instance(term_server: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A running two-service instance with a unique name."""
    name = f"t-term-{uuid.uuid4().hex[:6]}"
    compose = tmp_path_factory.mktemp("term-app") / "compose.yaml"
    compose.write_text(COMPOSE)
    result = term_server.cli("app", "install", str(compose), "--name", name, "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    term_server.wait_status(name, {"running"})
    return name


@pytest.fixture
def server(term_server: Server) -> Server:
    """The module's server."""
    return term_server


def container(name: str, service: str) -> str:
    """Return the container name of one service of an instance."""
    out = docker("ps", "--filter", f"label=io.stackhub.instance={name}", "--filter",
                 f"label=com.docker.compose.service={service}", "--format", "{{.Names}}").stdout
    return out.split()[0]


def processes(name: str, service: str) -> str:
    """Return `ps` of a service's container."""
    return docker("exec", container(name, service), "ps", "-o", "pid,args").stdout


def exec_cli(server: Server, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run `stackhub app exec` with piped stdin (not a terminal)."""
    return subprocess.run([*STACKHUB, "app", "exec", *args], input=stdin, capture_output=True,
                          text=True, env=server.env, timeout=120, check=False)


@contextlib.contextmanager
def open_terminal(server: Server, name: str, **start: Any) -> Iterator[ClientConnection]:
    """Open a container terminal with the admin token and send the start message."""
    url = server.url.replace("http://", "ws://") + f"/api/instances/{name}/terminal"
    with connect(url, additional_headers={"Authorization": f"Bearer {server.token}"},
                 open_timeout=30) as ws:
        assert json.loads(ws.recv(10)) == {"type": "auth_ok"}
        ws.send(json.dumps({"type": "start", **start}))
        started = json.loads(ws.recv(30))
        assert started["type"] == "started", started
        yield ws


def read_until(ws: ClientConnection, needle: str, timeout: float = 20) -> str:
    """Collect output until `needle` shows up; fail after `timeout` s."""
    seen = ""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} never came; output so far: {seen[-500:]!r}"
        try:
            message = ws.recv(left)
        except TimeoutError:
            continue
        if isinstance(message, bytes):
            seen += message[1:].decode("utf-8", "replace")
    return seen


def gone(name: str, service: str, marker: str, timeout: float = 10) -> bool:
    """Wait until no process in the container mentions `marker`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker not in processes(name, service):
            return True
        time.sleep(0.2)
    return False


def test_cli_exec_streams_and_exit_code(server: Server, instance: str) -> None:
    """Non-interactive exec: stdout and stderr apart, stdin piped, the command's exit code."""
    result = exec_cli(server, instance, "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert result.returncode == 7, result
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"

    ok = exec_cli(server, instance, "--service", "worker", "--", "sh", "-c",
                  "read line; echo got:$line; cat /proc/1/cmdline | tr '\\0' ' '",
                  stdin="hello\nmore\n")
    assert ok.returncode == 0, ok
    assert ok.stdout.startswith("got:hello\n")
    assert "sleep 100000" in ok.stdout  # it ran in the worker service's container

    missing = exec_cli(server, instance, "--service", "nope", "--", "true")
    assert missing.returncode == 1
    assert "no service 'nope'" in missing.stderr

    absent = exec_cli(server, "t-term-absent", "--", "true")
    assert absent.returncode == 1
    assert "absent" in absent.stderr


def test_shell_over_websocket_and_exit(server: Server, instance: str) -> None:
    """No command: the container's shell (this image has sh only) on a TTY; exit ends it."""
    with open_terminal(server, instance, rows=30, cols=100) as ws:
        ws.send(b"echo hi-$((6*7)); stty size\n")
        out = read_until(ws, "30 100")
        assert "hi-42" in out
        ws.send(b"exit 3\n")
        while True:
            message = ws.recv(20)
            if isinstance(message, str):
                assert json.loads(message) == {"type": "exit", "code": 3}
                break


@pytest.mark.parametrize("tty", [True, False])
def test_disconnect_mid_command_ends_the_process(server: Server, instance: str,
                                                 tty: bool) -> None:
    """A client that goes away mid-command leaves nothing running in the container."""
    marker = str(200000 + uuid.uuid4().int % 100000)
    command = f"sleep {marker} & sleep {marker}"  # a foreground and a background process
    start: dict[str, Any] = {"service": "worker"} if tty else {
        "service": "worker", "tty": False, "command": ["sh", "-c", command + "; echo done"]}
    with open_terminal(server, instance, **start) as ws:
        if tty:  # typed into the shell
            ws.send(f"{command}\n".encode())
        deadline = time.monotonic() + 10
        while processes(instance, "worker").count(f"sleep {marker}") < 2:
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.1)
    assert gone(instance, "worker", f"sleep {marker}"), processes(instance, "worker")


def test_resize_flood_keeps_the_terminal_working(server: Server, instance: str) -> None:
    """Thousands of resizes in a burst: the session still answers, and the last size wins."""
    with open_terminal(server, instance) as ws:
        for i in range(3000):
            ws.send(json.dumps({"type": "resize", "rows": 10 + i % 50, "cols": 40 + i % 90}))
        ws.send(json.dumps({"type": "resize", "rows": 41, "cols": 133}))
        ws.send(json.dumps({"type": "resize", "rows": 0, "cols": 99999}))  # ignored
        ws.send(b"not json but binary\x00\x01")  # typed into the shell, harmless
        time.sleep(1.0)
        ws.send(b"\x03\nstty size\n")
        read_until(ws, "41 133")


def test_cli_exec_interactive_on_a_terminal(server: Server, instance: str) -> None:
    """With stdin and stdout on a terminal: a TTY in the container, sized like the local one,
    typed input, and the shell's exit code as the CLI's."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 97, 0, 0))
    proc = subprocess.Popen([*STACKHUB, "app", "exec", instance], stdin=slave, stdout=slave,
                            stderr=slave, env={**server.env, "COLUMNS": "", "LINES": ""},
                            start_new_session=True)
    os.close(slave)
    seen = b""

    def wait_for(needle: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 30
        while needle not in seen:
            assert time.monotonic() < deadline, seen[-400:]
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
        assert needle in seen, seen[-400:]

    try:
        wait_for(b"# ")
        os.write(master, b"tty; stty size; echo in-$((3*4))\r")
        wait_for(b"in-12")
        assert b"/dev/pts/" in seen
        assert b"33 97" in seen
        os.write(master, b"exit 2\r")
        assert proc.wait(30) == 2
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
