"""The host terminal: a root login shell on a pty, in its own session.

The shell runs with ``start_new_session`` on a fresh pty (the pty becomes its controlling
terminal), read through the event loop (``add_reader``), resized with ``TIOCSWINSZ``. Ending
the terminal sends SIGHUP to the shell's whole session, then SIGKILL to what is left of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pwd
import signal
import struct
import subprocess
import termios
from pathlib import Path

from stackhub.adapters.exec import kill_tree
from stackhub.tools.terminals import TERM

STDOUT = 1


def login_shell() -> str:
    """Return the account's shell, else bash, else sh."""
    with contextlib.suppress(KeyError):
        shell = pwd.getpwuid(os.geteuid()).pw_shell
        if shell and Path(shell).is_file() and os.access(shell, os.X_OK) \
                and not shell.endswith(("nologin", "false")):
            return shell
    for candidate in ("/bin/bash", "/usr/bin/bash", "/bin/sh"):
        if Path(candidate).is_file():
            return candidate
    return "/bin/sh"


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class HostTerminal:
    """A shell on the host behind a pty."""

    def __init__(self, rows: int, cols: int, *, shell: str | None = None) -> None:
        """Start the shell on a new pty in a new session."""
        self.description = "host"
        master, slave = os.openpty()
        _set_size(slave, rows, cols)
        home = pwd.getpwuid(os.geteuid()).pw_dir if os.geteuid() == 0 else str(Path.home())
        env = {"TERM": TERM, "HOME": home, "SHELL": shell or login_shell(),
               "PATH": os.environ.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                      "/usr/bin:/sbin:/bin"),
               "LANG": os.environ.get("LANG", "C.UTF-8"), "USER": pwd.getpwuid(os.geteuid())[0]}
        try:
            self.proc = subprocess.Popen(
                [env["SHELL"], "-l"], stdin=slave, stdout=slave, stderr=slave, cwd=home,
                env=env, start_new_session=True, close_fds=True,
                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        finally:
            os.close(slave)
        self.fd = master
        os.set_blocking(master, False)
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(master, self._readable)
        self._reading = True
        self._ended = False

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""  # EIO: the shell and every holder of the pty are gone
        if not data:
            self._stop_reading()
            self._queue.put_nowait(None)
            return
        if self._queue.full():  # the client reads slowly: wait for it before reading more
            self._loop.remove_reader(self.fd)
            self._reading = False
            self._loop.create_task(self._resume(data))
            return
        self._queue.put_nowait(data)

    async def _resume(self, data: bytes) -> None:
        await self._queue.put(data)
        if not self._ended and not self._reading:
            self._loop.add_reader(self.fd, self._readable)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self.fd)
            self._reading = False

    async def read(self) -> tuple[int, bytes] | None:
        """Return the next output chunk (all on stdout: a pty has one stream)."""
        data = await self._queue.get()
        if data is None:
            self._queue.put_nowait(None)
            return None
        return STDOUT, data

    async def write(self, data: bytes) -> None:
        """Type into the shell."""
        view = memoryview(data)
        while view and not self._ended:
            try:
                written = os.write(self.fd, view)
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            except OSError:
                return
            view = view[written:]

    async def resize(self, rows: int, cols: int) -> None:
        """Set the pty's size (the shell gets SIGWINCH)."""
        if not self._ended:
            with contextlib.suppress(OSError):
                _set_size(self.fd, rows, cols)

    def close_stdin(self) -> None:
        """Send end of file (Ctrl-D) to the shell."""
        with contextlib.suppress(OSError):
            os.write(self.fd, b"\x04")

    async def exit_code(self) -> int | None:
        """Return the shell's exit code."""
        try:
            code = await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 5)
        except TimeoutError:
            return None
        return code if code >= 0 else 128 - code

    def _hang_up(self) -> None:
        self._stop_reading()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGHUP)
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def abandon(self) -> None:
        """Hang up and kill the shell's whole session at once, without the loop."""
        if not self._ended:
            self._ended = True
            self._hang_up()
        kill_tree(self.proc.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    async def end(self) -> None:
        """Hang up the shell's session, kill what remains, close the pty."""
        if self._ended:
            return
        self._ended = True
        self._hang_up()
        pid = self.proc.pid
        try:
            for _ in range(20):
                if self.proc.poll() is not None:
                    break
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            self.abandon()
            raise
        await asyncio.to_thread(kill_tree, pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(self.proc.wait, 5)
