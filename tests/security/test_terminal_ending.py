"""A host terminal whose ending is cancelled (the server stopping) still leaves no process."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from stackhub.tools.terminals_host import HostTerminal
from stackhub.tools.terminals_views import _end


def _alive(*commands: str) -> list[Path]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if cmd in commands:
            found.append(proc)
    return found


async def _busy_shell(tmp_path: Path, first: str, second: str) -> HostTerminal:
    terminal = HostTerminal(24, 80, shell="/bin/bash")
    marker = tmp_path / "started"
    await terminal.write(f"sleep {first} & touch {marker}; sleep {second}\n".encode())
    deadline = time.monotonic() + 20
    while not marker.exists():
        assert time.monotonic() < deadline, "the shell never ran the command"
        await asyncio.sleep(0.05)
    return terminal


async def test_abandon_kills_the_whole_session_without_the_loop(tmp_path: Path) -> None:
    terminal = await _busy_shell(tmp_path, "771", "772")
    assert len(_alive("sleep 771", "sleep 772")) == 2
    terminal.abandon()  # synchronous: no await after it until the check
    deadline = time.monotonic() + 5
    while _alive("sleep 771", "sleep 772"):
        assert time.monotonic() < deadline, _alive("sleep 771", "sleep 772")
        time.sleep(0.05)  # blocking on purpose: the event loop never runs meanwhile
    await terminal.end()  # still safe afterwards


class _Recording:
    """A terminal whose ending never finishes on its own."""

    description = "fake"

    def __init__(self) -> None:
        self.abandoned = 0

    async def end(self) -> None:
        await asyncio.sleep(3600)

    def abandon(self) -> None:
        self.abandoned += 1


async def test_a_cancelled_ending_abandons_at_once() -> None:
    terminal = _Recording()
    task = asyncio.ensure_future(_end(terminal))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert terminal.abandoned == 1
