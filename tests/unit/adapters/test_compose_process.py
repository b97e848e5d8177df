"""A compose run dies with the server: kill -9 the server and no compose process lives on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from stackhub.adapters import compose as compose_mod

# A stand-in server: runs a long "compose" (sleep) through the adapter, prints its child's pid.
SERVER = textwrap.dedent("""
    import asyncio, sys
    from stackhub.adapters import compose
    if sys.argv[1] == "hook":
        compose.death_pact = lambda: []
    async def main():
        adapter = compose.ComposeCli(argv=["sleep"])
        task = asyncio.ensure_future(adapter._run(["300"], action="test"))
        await asyncio.sleep(0.3)
        print("ready", flush=True)
        await task
    asyncio.run(main())
""")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.parametrize("mode", ["setpriv", "hook"])
def test_compose_child_dies_when_the_server_is_killed(mode: str) -> None:
    if mode == "setpriv" and not compose_mod.death_pact():
        pytest.fail("setpriv --pdeathsig is missing: util-linux >= 2.33 is part of the base system")
    server = subprocess.Popen([sys.executable, "-c", SERVER, mode], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 20  # a starved setpriv may take a while to exec
        while True:
            children = _children(server.pid)
            assert len(children) == 1
            child = children[0]
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if command[:2] == [b"sleep", b"300"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert command[:2] == [b"sleep", b"300"]  # setpriv has exec'd into it
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), f"compose stand-in {child} outlived the killed server"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)


def test_death_pact_is_setpriv_with_pdeathsig() -> None:
    pact = compose_mod.death_pact()
    assert pact[1:] == ["--pdeathsig", "KILL", "--"] and pact[0].endswith("setpriv")


async def test_missing_compose_binary_is_engine_unavailable(tmp_path: Path) -> None:
    adapter = compose_mod.ComposeCli(argv=[str(tmp_path / "no-such-compose")])
    with pytest.raises(compose_mod.EngineUnavailable, match="not installed"):
        await adapter.version()


async def test_short_runs_get_a_lighter_garbage_collector(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOGC", raising=False)
    seen = tmp_path / "gogc"
    script = tmp_path / "compose"
    script.write_text(f"#!/bin/sh\nprintf '%s' \"${{GOGC:-unset}}\" > {seen}\n"
                      "printf '{\"services\": {}}'\n")
    script.chmod(0o755)
    adapter = compose_mod.ComposeCli(argv=[str(script)])
    assert (await adapter.config("p", tmp_path)).services == {}
    assert seen.read_text() == "400"
    await adapter.up("p", tmp_path)  # long runs (pulls, starts) keep Go's default
    assert seen.read_text() == "unset"
