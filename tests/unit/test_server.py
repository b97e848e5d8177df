"""The server's uvicorn subclass: memory settled once started, a slow tick woken by signals."""

from __future__ import annotations

import asyncio
import gc
import signal
import threading
import time
from typing import Any

import pytest
import uvicorn

from stackhub import server as server_module
from stackhub.server import _Server


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal ASGI application (no lifespan)."""


def test_a_signal_ends_the_tick_wait_and_start_up_freezes_memory(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "TICK", 3600.0)  # only the wake-up can end the wait
    server = _Server(uvicorn.Config(_app, host="127.0.0.1", port=0, lifespan="off",
                                    log_level="warning"))
    # not the main thread: uvicorn installs no signal handlers and re-raises nothing
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while server._woken is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.started
        assert gc.get_freeze_count() > 0  # start-up's survivors left the collector's generations
        assert not server.should_exit
        server.handle_exit(signal.SIGTERM, None)
        thread.join(60)
        assert not thread.is_alive()
        assert server.should_exit
    finally:
        server.should_exit = True
        thread.join(5)
        gc.unfreeze()


def test_start_up_solves_the_routes_off_the_loop_then_turns_the_collector_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    solved: list[tuple[int, bool]] = []  # (thread, frozen yet)
    monkeypatch.setattr(server_module, "solve_routes", lambda: solved.append(
        (threading.get_ident(), gc.get_freeze_count() > 0)))
    server = _Server(uvicorn.Config(_app, host="127.0.0.1", port=0, lifespan="off",
                                    log_level="warning"))
    loop_thread: list[int] = []

    def run() -> None:
        loop_thread.append(threading.get_ident())
        asyncio.run(server.serve())

    gc.unfreeze()
    gc.disable()  # as `stackhub serve` starts
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while server._woken is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(solved) == 1
        assert solved[0][0] != loop_thread[0]  # a worker thread, the loop kept answering
        assert solved[0][1] is False  # solved before start-up's survivors were frozen
        assert gc.isenabled() and gc.get_freeze_count() > 0
    finally:
        server.should_exit = True
        thread.join(5)
        gc.enable()
        gc.unfreeze()


def test_settle_memory_is_repeatable() -> None:
    try:
        server_module.settle_memory()
        frozen = gc.get_freeze_count()
        server_module.settle_memory()
        assert gc.get_freeze_count() >= frozen > 0
    finally:
        gc.unfreeze()


def test_memory_is_trimmed_once_after_a_burst_then_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "TICK", 0.01)
    monkeypatch.setattr(server_module, "QUIET_TICKS", 3)
    monkeypatch.setattr(server_module, "SETTLE_AFTER", 5)
    trims: list[int] = []
    server = _Server(uvicorn.Config(_app, host="127.0.0.1", port=0, lifespan="off",
                                    log_level="warning"))

    def trim(*, collect: bool = True) -> None:
        if collect:  # not start-up's (settle_memory)
            trims.append(server.server_state.total_requests)

    monkeypatch.setattr(server_module, "trim_memory", trim)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while server._woken is None and time.monotonic() < deadline:
            time.sleep(0.01)
        server.server_state.total_requests = 3  # too few to be worth a trim
        time.sleep(0.3)
        assert trims == []
        server.server_state.total_requests = 8  # a burst, then quiet
        while not trims and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # quiet goes on: no second trim without new requests
        assert trims == [8]
    finally:
        server.should_exit = True
        thread.join(5)
        gc.unfreeze()
