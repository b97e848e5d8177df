"""Run the HTTP server and record where it listens."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

# httpx imports its command-line tool (rich, click, pygments: 3.5 MB resident) whenever those
# are installed, as they are for StackHub's CLI; the server never uses it (issue 18, part 4)
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]  # a failed import
# uvicorn imports watchfiles (0.6 MB) for --reload, which `stackhub serve` never uses; without it
# uvicorn falls back to its stat-based reloader, never started either
sys.modules.setdefault("watchfiles", None)  # type: ignore[arg-type]
# FastAPI imports pydantic.v1 (1.5 MB resident) only to refuse v1 models, which StackHub has
# none of; its check treats a failed import as "not a v1 model"
sys.modules.setdefault("pydantic.v1", None)  # type: ignore[arg-type]

import uvicorn  # noqa: E402

from stackhub import fsutil  # noqa: E402
from stackhub.api.app import create_app, solve_routes  # noqa: E402
from stackhub.config import Paths  # noqa: E402
from stackhub.state import versioning  # noqa: E402


def serve(paths: Paths, *, host: str, port: int, public_host: str | None = None) -> None:
    """Serve the API until interrupted; write server.json for local clients."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    paths.ensure()
    try:  # a database a newer StackHub used: say so plainly, not as a start-up traceback
        versioning.check_file(paths.db)
    except versioning.NewerDatabase as err:
        raise SystemExit(f"StackHub refuses to start: {err.message}") from None
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    url = f"http://{local}:{port}"
    fsutil.write_atomic(paths.server_info, json.dumps({"url": url, "pid": os.getpid()}),
                        mode=0o644)
    app = create_app(paths, public_host=public_host or os.environ.get("STACKHUB_PUBLIC_HOST")
                     or local)
    server = _Server(server_config(app, host=host, port=port))
    # uvicorn re-raises SIGTERM/SIGINT after its shutdown, which ends the process before any
    # `finally` below runs: the file goes when the shutdown ends (and on any other way out)
    server.on_shutdown = lambda: paths.server_info.unlink(missing_ok=True)
    try:
        server.run()
    except KeyboardInterrupt:  # as uvicorn.run
        pass
    finally:
        paths.server_info.unlink(missing_ok=True)
    if not server.started:
        raise SystemExit(3)  # uvicorn's STARTUP_FAILURE, as uvicorn.run exits


def server_config(app: Callable[..., Any], *, host: str, port: int) -> uvicorn.Config:
    """uvicorn's settings for `stackhub serve`.

    The event loop is asyncio's own, not uvloop: libuv (since 1.45) accepts one connection per
    turn of its loop, so while the loop is busy (200 clients, each turn tens of ms) a burst of
    new connections waits in the listen queue for seconds, one turn each (issue 18: a run's
    first 100+ connections answered after 1 to 4.6 s, wrk's p99 of 1-2 s). asyncio's loop
    accepts the whole queue at once. Proxy headers are honoured only from configured trusted
    proxies (api/security.py), not by uvicorn.
    """
    return uvicorn.Config(app, host=host, port=port, loop="asyncio", log_level="info",
                          access_log=False, proxy_headers=False, server_header=False)


TICK = 1.0
"""Seconds between the server's housekeeping ticks (uvicorn's: 0.1 s, ten idle wake-ups a
second, ~0.1 % of a core; its only per-tick work, the Date header, changes once a second)."""
QUIET_TICKS = 10
"""Ticks without a request after which memory freed by a burst is given back to the system."""
SETTLE_AFTER = 1
"""Requests since the last trim that make a quiet spell worth one (a collection of what is not
frozen and a `malloc_trim`: 0.1 to 0.5 ms of CPU once start-up's objects are frozen). Any
request will do: a store sync or a console's first load leaves ~1.3 MB of freed heap that a
trim gives back (issue 18 part 4), and a server busy all the time never goes quiet for it."""


class _Server(uvicorn.Server):
    """uvicorn's server, settling its memory once started and ticking once a second when idle
    (issue 18, parts 3 and 4; issue 15 item 6)."""

    _woken: asyncio.Future[None] | None = None
    on_shutdown: Callable[[], None] | None = None
    """Called once uvicorn's shutdown is done (before it re-raises a captured signal)."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown, then `on_shutdown`."""
        try:
            await super().shutdown(sockets=sockets)
        finally:
            if self.on_shutdown is not None:
                self.on_shutdown()

    async def main_loop(self) -> None:
        """uvicorn's loop of ticks, one a second; a signal ends the wait at once. After a burst
        of requests followed by QUIET_TICKS quiet ticks, freed heap is given back (part 4)."""
        loop = asyncio.get_running_loop()
        counter = 0
        settled = seen = self.server_state.total_requests
        quiet = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            self._woken = loop.create_future()
            await asyncio.wait([self._woken], timeout=TICK)
            counter = (counter + 10) % 864000  # a multiple of 10: on_tick's once-a-second work
            should_exit = await self.on_tick(counter)
            total = self.server_state.total_requests
            quiet, seen = (quiet + 1, seen) if total == seen else (0, total)
            if quiet >= QUIET_TICKS and total - settled >= SETTLE_AFTER:
                settled = total
                trim_memory()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Note the signal as uvicorn does, then wake the tick loop to act on it now."""
        super().handle_exit(sig, frame)
        woken = self._woken
        if woken is not None and not woken.done():
            woken.get_loop().call_soon_threadsafe(_wake, woken)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start, solve the routes, then freeze what start-up made and give freed heap back.

        The routes are solved in a thread once the server answers (the health and hot reads
        need none of them; a request meanwhile waits at most for its own router). Everything
        alive after that (modules, routes, models, services: ~190k objects) is moved out of the
        collector's generations, so a full collection under load walks only what requests made
        (one took 0.86 s of wall time under 200 connections before); the collector, off since
        `stackhub serve` began (see `cli.main.serve`), is on again from there.
        """
        await super().startup(sockets=sockets)
        if self.started:
            await asyncio.to_thread(solve_routes)
            settle_memory()


def _wake(woken: asyncio.Future[None]) -> None:
    if not woken.done():
        woken.set_result(None)


def settle_memory() -> None:
    """Collect, freeze the survivors, return free heap pages to the system (glibc), and turn
    the collector on (start-up runs without it: ~0.1 s of CPU in collections that free little)."""
    gc.collect()
    gc.freeze()
    gc.enable()
    trim_memory(collect=False)


def trim_memory(*, collect: bool = True) -> None:
    """Collect (what is not frozen), then return free heap pages to the system (glibc only)."""
    if collect:
        gc.collect()
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own symbols: libc's
    except (OSError, AttributeError):  # not glibc (musl): nothing to trim
        return
    trim(0)
