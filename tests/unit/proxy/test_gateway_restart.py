"""The gateway's watcher and a Caddy that dies during a change, with a fake Caddy program.

The fake serves Caddy's admin API on the boot config's unix socket: it records every load
(with its pid) and, while a ``hang`` file exists, takes a load without answering; a ``slow``
file makes it wait before listening (a start on a loaded box), longer than the admin client's
own retries. A hung Caddy is the fake stopped by SIGSTOP (alive, its socket silent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from stackhub.adapters import caddy
from stackhub.adapters.caddy import HANG_CHECKS, CaddyGateway

FAKE = """#!{python}
import asyncio, json, os, sys, time

home = os.getcwd()
socket = json.load(open(sys.argv[3]))["admin"]["listen"].removeprefix("unix/")
loaded = []


async def handle(reader, writer):
    head = (await reader.readuntil(b"\\r\\n\\r\\n")).decode()
    method, path = head.split(" ")[:2]
    length = next((int(line.split(":")[1]) for line in head.split("\\r\\n")
                   if line.lower().startswith("content-length")), 0)
    body = (await reader.readexactly(length)).decode()
    if method == "POST" and path == "/load":
        if os.path.exists(os.path.join(home, "hang")):
            open(os.path.join(home, "got"), "w").close()
            await asyncio.sleep(3600)
        with open(os.path.join(home, "loads.log"), "a") as log:
            log.write(f"{{os.getpid()}} {{body}}\\n")
        loaded.append(body)
    text = "{{}}" if loaded else "null"
    writer.write(f"HTTP/1.1 200 OK\\r\\nContent-Length: {{len(text)}}\\r\\n"
                 f"Connection: close\\r\\n\\r\\n{{text}}".encode())
    await writer.drain()
    writer.close()


async def main():
    if os.path.exists(os.path.join(home, "slow")):
        time.sleep(1.5)
    server = await asyncio.start_unix_server(handle, path=socket)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    """Write the fake Caddy program; return its path."""
    path = tmp_path / "caddy"
    path.write_text(FAKE.format(python=sys.executable))
    path.chmod(0o755)
    return path


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Check the admin API every 0.2 s, 1 s each (a hang is seen in seconds, not 15 s)."""
    monkeypatch.setattr(caddy, "CHECK_EVERY", 0.2)
    monkeypatch.setattr(caddy, "CHECK_TIMEOUT", 1.0)


def children(program: Path) -> list[psutil.Process]:
    """Return this test's live children running `program`."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if str(program) in proc.cmdline() and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def loads(home: Path) -> list[tuple[int, dict[str, Any]]]:
    """Return (pid, config) of every load the fake answered."""
    path = home / "loads.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(int(pid), json.loads(body)) for pid, _, body in (x.partition(" ") for x in lines)]


async def until(check: Any, timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_a_load_in_flight_when_caddy_dies_goes_to_the_restarted_caddy(
        tmp_path: Path, fake: Path) -> None:
    home = tmp_path / "gateway"
    gateway = CaddyGateway(home, binary=str(fake))

    async def reapply() -> None:
        await gateway.load({"from": "watcher"})

    await gateway.start(reapply)
    try:
        assert gateway.process is not None and gateway.process.proc is not None
        first = gateway.process.proc.pid
        (home / "hang").touch()
        (home / "slow").touch()
        change = asyncio.create_task(gateway.load({"from": "change"}))
        await until(lambda: (home / "got").exists())
        (home / "hang").unlink()
        os.kill(first, signal.SIGKILL)  # the load is never answered
        await asyncio.wait_for(change, 30)  # no error: loaded into the new Caddy
        assert gateway.restarts == 1
        second = gateway.process.proc.pid
        assert second != first
        assert (second, {"from": "change"}) in loads(home)
        await until(lambda: (second, {"from": "watcher"}) in loads(home))
        assert [p.pid for p in children(fake)] == [second]
    finally:
        await gateway.stop()


async def test_a_change_while_caddy_is_dead_waits_for_the_watchers_restart(
        tmp_path: Path, fake: Path) -> None:
    """A change arriving before the watcher started Caddy again starts no second Caddy (it
    would hold the ports, and the watched one could never load a config)."""
    home = tmp_path / "gateway"
    gateway = CaddyGateway(home, binary=str(fake))

    async def reapply() -> None:
        await gateway.load({"from": "watcher"})

    await gateway.start(reapply)
    try:
        assert gateway.process is not None and gateway.process.proc is not None
        first = gateway.process.proc.pid
        (home / "slow").touch()
        os.kill(first, signal.SIGKILL)
        await until(lambda: not gateway.running)
        await gateway.start(reapply)  # what a change does when the gateway is not running
        await gateway.load({"from": "change"})
        assert gateway.restarts == 1 and gateway.running
        second = gateway.process.proc.pid
        assert (second, {"from": "change"}) in loads(home)
        assert [p.pid for p in children(fake)] == [second]
    finally:
        await gateway.stop()
    assert children(fake) == []


def unstop(pid: int, program: Path) -> None:
    """Kill and continue `pid` if it is still this test's `program` (a stopped fake)."""
    if pid in [p.pid for p in children(program)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            os.kill(pid, signal.SIGCONT)


async def test_a_hung_caddy_is_killed_started_again_and_the_change_it_held_lands(
        tmp_path: Path, fake: Path, quick: None, caplog: pytest.LogCaptureFixture) -> None:
    """Caddy alive but silent (SIGSTOP): after HANG_CHECKS missed checks the watcher kills it,
    starts it again and loads the config again; a change waiting on it goes to the new one."""
    caplog.set_level(logging.WARNING, logger="stackhub.gateway")
    home = tmp_path / "gateway"
    gateway = CaddyGateway(home, binary=str(fake))

    async def reapply() -> None:
        await gateway.load({"from": "watcher"})

    await gateway.start(reapply)
    assert gateway.process is not None and gateway.process.proc is not None
    first = gateway.process.proc.pid
    try:
        await until(lambda: (first, {"from": "watcher"}) in loads(home))
        os.kill(first, signal.SIGSTOP)
        change = asyncio.create_task(gateway.load({"from": "change"}))
        await asyncio.wait_for(change, 20)  # no error, and before the load's own 30 s timeout
        second = gateway.process.proc.pid
        assert second != first and gateway.restarts == 1
        assert (second, {"from": "change"}) in loads(home)
        await until(lambda: (second, {"from": "watcher"}) in loads(home))
        assert [p.pid for p in children(fake)] == [second]
        assert any(f"pid {first}" in r.getMessage() and "hangs" in r.getMessage()
                   for r in caplog.records)
    finally:
        unstop(first, fake)
        await gateway.stop()
    assert children(fake) == []


async def test_a_hung_system_caddy_is_never_killed(
        tmp_path: Path, fake: Path, quick: None, caplog: pytest.LogCaptureFixture) -> None:
    """A system Caddy (STACKHUB_CADDY_ADMIN) that stops answering is only reported, however
    many checks it misses: it is not StackHub's to kill."""
    caplog.set_level(logging.WARNING, logger="stackhub.gateway")
    system = tmp_path / "system"
    system.mkdir()
    socket = system / "admin.sock"
    boot = system / "boot.json"
    boot.write_text(json.dumps({"admin": {"listen": f"unix/{socket}"}}))
    proc = subprocess.Popen([str(fake), "run", "--config", str(boot)], cwd=system)
    gateway = CaddyGateway(tmp_path / "gateway", external=socket, binary=str(fake))

    async def reapply() -> None:
        await gateway.load({"from": "watcher"})

    def missed() -> int:
        return sum("does not answer" in r.getMessage() for r in caplog.records)

    try:
        await until(socket.exists)
        await gateway.start(reapply)
        await until(lambda: (proc.pid, {"from": "watcher"}) in loads(system))
        os.kill(proc.pid, signal.SIGSTOP)
        await until(lambda: missed() > HANG_CHECKS, timeout=40)
        assert psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED
        assert gateway.restarts == 0 and gateway.running and gateway.process is None
        assert not any("hangs" in r.getMessage() for r in caplog.records)
    finally:
        await gateway.stop()
        unstop(proc.pid, fake)
        proc.wait(10)
