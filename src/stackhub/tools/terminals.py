"""Terminals: a process in an instance's container, or a root shell on the host.

Both are a `Terminal`: output chunks tagged with their stream, stdin bytes, a size, an exit
code. `Terminals.open_container` picks the container (the service asked for, else the app's
main web service, else the first running one) and the shell (bash if the container has it, else
sh), and runs the process through the engine's exec API (`adapters/exec.py`). Ending a
terminal always ends its process: the engine would leave an exec running after its client went
away, so `end()` kills what is left. Resize requests are coalesced: one engine call at a time,
the latest size wins, so a flood costs a handful of calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from stackhub.adapters.exec import EngineExec, ExecStream
from stackhub.apps.service import AppsService
from stackhub.errors import Conflict, NotFound, StackHubError
from stackhub.tools.terminal_models import ContainerTerminalStart

log = logging.getLogger("stackhub.terminals")

HOST_TERMINAL_ENV = "STACKHUB_HOST_TERMINAL"
IDLE_TIMEOUT_ENV = "STACKHUB_HOST_TERMINAL_IDLE"
HOST_SHELL_ENV = "STACKHUB_HOST_SHELL"
"""The host terminal's shell (an absolute path, run as a login shell); unset: root's own."""
DEFAULT_IDLE_TIMEOUT = 900
SHELLS = ("/bin/bash", "/usr/bin/bash", "/bin/sh", "/usr/bin/sh")
TERM = "xterm-256color"
MAX_PER_USER = 16
"""Terminals (container and host together) one user may hold open at once."""


class Terminal(Protocol):
    """A running process behind a terminal."""

    description: str

    async def read(self) -> tuple[int, bytes] | None:
        """Return the next output chunk with its stream (1 stdout, 2 stderr); None at the end."""

    async def write(self, data: bytes) -> None:
        """Send bytes to the process's input."""

    async def resize(self, rows: int, cols: int) -> None:
        """Change the terminal's size."""

    def close_stdin(self) -> None:
        """Let the process read end of file."""

    async def exit_code(self) -> int | None:
        """Return the exit code once the output has ended (None if unknown)."""

    async def end(self) -> None:
        """End the process if it still runs and release everything (idempotent)."""

    def abandon(self) -> None:
        """End what can be ended without the event loop (its ending task was cancelled and
        the loop may stop before that task runs: the server going down)."""


class Resizer:
    """Apply terminal sizes one at a time, the latest winning (a flood becomes a few calls)."""

    def __init__(self, apply: _Apply) -> None:
        """Remember how to apply a size."""
        self._apply = apply
        self._want: tuple[int, int] | None = None
        self._done: tuple[int, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self.calls = 0

    def request(self, rows: int, cols: int) -> None:
        """Ask for a size; returns at once."""
        self._want = (rows, cols)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self._want is not None and self._want != self._done:
            size = self._want
            self.calls += 1
            try:
                await self._apply(*size)
            except StackHubError as err:
                log.debug("resize failed: %s", err.message)
            self._done = size

    async def close(self) -> None:
        """Stop applying sizes."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class _Apply(Protocol):
    async def __call__(self, rows: int, cols: int) -> None: ...


class ContainerTerminal:
    """A process in a container, over a raw exec stream."""

    def __init__(self, execs: EngineExec, stream: ExecStream, description: str) -> None:
        """Hold the exec and its stream."""
        self.execs = execs
        self.stream = stream
        self.description = description
        self.resizer = Resizer(self._resize)
        self._ended = False

    async def _resize(self, rows: int, cols: int) -> None:
        await self.execs.resize(self.stream.id, rows=rows, cols=cols)

    async def read(self) -> tuple[int, bytes] | None:
        """Return the next output chunk."""
        return await self.stream.read()

    async def write(self, data: bytes) -> None:
        """Send input."""
        await self.stream.write(data)

    async def resize(self, rows: int, cols: int) -> None:
        """Ask for a size (coalesced)."""
        if self.stream.tty:
            self.resizer.request(rows, cols)

    async def size_now(self, rows: int, cols: int) -> None:
        """Set the size and wait until the engine applied it (a refusal is only logged)."""
        try:
            await self._resize(rows, cols)
        except StackHubError as err:
            log.debug("resize failed: %s", err.message)

    def close_stdin(self) -> None:
        """Half-close the exec's connection."""
        self.stream.close_stdin()

    async def exit_code(self) -> int | None:
        """Return the exit code the engine recorded."""
        return await self.execs.wait_exit(self.stream.id)

    async def end(self) -> None:
        """Kill what still runs of the exec, then close the connection."""
        if self._ended:
            return
        self._ended = True
        await self.resizer.close()
        try:
            killed = await self.execs.kill(self.stream.id)
            if killed:
                log.info("terminal %s: ended %d process(es) left running", self.description,
                         killed)
        finally:
            await self.stream.close()

    def abandon(self) -> None:
        """Nothing without the loop: killing the exec is an engine call, and its connection
        closes with the server (the process may then run on in its container)."""


def _shell_setting() -> str | None:
    """Return STACKHUB_HOST_SHELL when it names an executable file, else None (logged)."""
    raw = os.environ.get(HOST_SHELL_ENV, "").strip()
    if not raw:
        return None
    path = Path(raw)
    if not path.is_absolute() or not path.is_file() or not os.access(path, os.X_OK):
        log.warning("%s=%s is not an executable file: the host terminal runs root's own "
                    "login shell", HOST_SHELL_ENV, raw)
        return None
    return raw


class Terminals:
    """Open terminals into instances' containers; say whether the host terminal is on."""

    def __init__(self, *, apps: AppsService, execs: EngineExec | None = None,
                 host_enabled: bool | None = None, idle_timeout: int | None = None,
                 host_shell: str | None = None) -> None:
        """Wire the apps service and the exec adapter; read the host terminal's settings."""
        self.apps = apps
        self.execs = execs or EngineExec()
        env_on = os.environ.get(HOST_TERMINAL_ENV, "").strip().lower() in ("1", "true", "yes",
                                                                            "on")
        self.host_enabled = env_on if host_enabled is None else host_enabled
        if idle_timeout is None:
            raw = os.environ.get(IDLE_TIMEOUT_ENV, "")
            idle_timeout = int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_IDLE_TIMEOUT
        self.idle_timeout = idle_timeout
        self.host_shell = host_shell or _shell_setting()
        self.max_per_user = MAX_PER_USER
        self._open: dict[str, int] = {}

    @contextlib.contextmanager
    def slot(self, user: str) -> Iterator[None]:
        """Hold one of the user's terminal slots (MAX_PER_USER at once), or raise Conflict."""
        if self._open.get(user, 0) >= self.max_per_user:
            raise Conflict(f"{user} already has {self.max_per_user} terminals open: close one")
        self._open[user] = self._open.get(user, 0) + 1
        try:
            yield
        finally:
            self._open[user] -= 1
            if not self._open[user]:
                del self._open[user]

    def container_of(self, name: str, service: str | None) -> tuple[str, str]:
        """Return (container, service) to run in: running, of the instance, as asked."""
        instance = self.apps.get(name)
        running = sorted((c for c in instance.containers if c.state == "running"),
                         key=lambda c: (c.service or "", c.name))
        if service is not None:
            chosen = [c for c in running if c.service == service]
            if not chosen:
                known = sorted({c.service for c in instance.containers if c.service})
                if service not in known:
                    raise NotFound(f"{name} has no service {service!r}"
                                   + (f"; services: {', '.join(known)}" if known else ""))
                raise Conflict(f"the {service} service of {name} is not running: start it first")
            return chosen[0].name, service
        if not running:
            raise Conflict(f"{name} has no running container: start it first")
        main = instance.main.service if instance.main is not None else None
        chosen = [c for c in running if c.service == main] or running
        return chosen[0].name, chosen[0].service or ""

    async def shell_of(self, container: str) -> list[str]:
        """Return the shell to start: bash if the container has it, else sh."""
        for path in SHELLS:
            if await self.execs.exists(container, path):
                return [path]
        raise Conflict("the container has neither bash nor sh: give a command to run")

    async def open_container(self, name: str, start: ContainerTerminalStart) -> ContainerTerminal:
        """Start a process in one of the instance's containers."""
        container, service = self.container_of(name, start.service)
        command = start.command or await self.shell_of(container)
        env = [f"TERM={TERM}"] if start.tty else []
        exec_id = await self.execs.create(container, command, tty=start.tty, env=env)
        stream = await self.execs.start(exec_id, tty=start.tty, rows=start.rows, cols=start.cols)
        terminal = ContainerTerminal(self.execs, stream, f"{name}/{service}")
        if start.tty:
            # the engine applies ConsoleSize only after the process started, so input typed
            # ahead could meet a 0x0 terminal: the size is set before the client hears "started"
            await terminal.size_now(start.rows, start.cols)
        return terminal
