"""Terminal plumbing without an engine: resize coalescing and ending a process tree."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from stackhub.adapters.exec import kill_tree
from stackhub.tools.terminal_models import ContainerTerminalStart
from stackhub.tools.terminals import HOST_SHELL_ENV, Resizer, Terminals


async def test_a_resize_flood_costs_a_few_calls_and_the_last_size_wins() -> None:
    applied: list[tuple[int, int]] = []

    async def apply(rows: int, cols: int) -> None:
        await asyncio.sleep(0.01)  # an engine round trip
        applied.append((rows, cols))

    resizer = Resizer(apply)
    for i in range(5000):
        resizer.request(10 + i % 40, 20 + i % 70)
        if i % 500 == 0:
            await asyncio.sleep(0)
    resizer.request(41, 133)
    for _ in range(1000):
        await asyncio.sleep(0.02)
        if applied and applied[-1] == (41, 133):
            break
    assert applied[-1] == (41, 133)
    assert len(applied) <= 25, len(applied)
    await resizer.close()


def test_kill_tree_ends_descendants_and_the_session(tmp_path: Path) -> None:
    """A shell with a child and a grandchild: all three die, unrelated processes do not."""
    script = "sleep 901 & (sleep 902 &) ; sleep 903"
    proc = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    bystander = subprocess.Popen(["sleep", "904"])
    try:
        deadline = time.monotonic() + 20
        while len(_sleeps({"901", "902", "903"})) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert kill_tree(proc.pid) >= 3
        proc.wait(5)
        deadline = time.monotonic() + 20
        while _sleeps({"901", "902", "903"}):
            assert time.monotonic() < deadline, _sleeps({"901", "902", "903"})
            time.sleep(0.05)
        assert bystander.poll() is None
        assert kill_tree(proc.pid) == 0  # gone: nothing to do, nothing else touched
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def _sleeps(marks: set[str]) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if args[:1] == [b"sleep"] and len(args) > 1 and args[1].decode() in marks:
                found.append(int(entry.name))
    return found



async def test_a_container_terminal_has_its_size_before_it_is_handed_over() -> None:
    """The engine applies an exec's ConsoleSize only once the process runs, so the size is set
    (and waited for) before the client hears "started": typed-ahead input never meets 0x0."""
    calls: list[tuple[str, Any]] = []

    class Execs:
        async def exists(self, container: str, path: str) -> bool:
            return path == "/bin/sh"

        async def create(self, container: str, cmd: list[str], *, tty: bool,
                         env: list[str] | None = None) -> str:
            return "exec-1"

        async def start(self, exec_id: str, *, tty: bool, rows: int | None = None,
                        cols: int | None = None) -> Any:
            calls.append(("start", (rows, cols)))
            return SimpleNamespace(id=exec_id, tty=tty)

        async def resize(self, exec_id: str, *, rows: int, cols: int) -> None:
            await asyncio.sleep(0.01)  # an engine round trip
            calls.append(("resize", (rows, cols)))

    container = SimpleNamespace(state="running", service="web", name="app-web-1")
    apps = SimpleNamespace(get=lambda name: SimpleNamespace(containers=[container], main=None))
    terminals = Terminals(apps=apps, execs=Execs(), host_enabled=False)  # type: ignore[arg-type]
    terminal = await terminals.open_container(
        "app", ContainerTerminalStart(type="start", rows=30, cols=100))
    assert calls == [("start", (30, 100)), ("resize", (30, 100))]
    await terminal.resizer.close()


def test_the_host_shell_setting_names_an_executable_or_is_ignored(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def shell_for(value: str) -> str | None:
        monkeypatch.setenv(HOST_SHELL_ENV, value)
        return Terminals(apps=None, execs=object(), host_enabled=False).host_shell  # type: ignore[arg-type]

    assert shell_for("/bin/sh") == "/bin/sh"
    assert shell_for("") is None  # root's own login shell
    text = tmp_path / "not-a-shell"
    text.write_text("x")
    for wrong in ("sh", str(tmp_path / "missing"), str(text), str(tmp_path)):
        assert shell_for(wrong) is None, wrong
