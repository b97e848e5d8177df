"""Fault points (test-only, `STACKHUB_FAULT_PAUSE`) pause one operation, never the server."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from stackhub import faults


def _in_thread(scenario: object) -> list[object]:
    """Run a coroutine on its own event loop in a daemon thread; a frozen loop cannot hang us."""
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(asyncio.run(scenario)),  # type: ignore[arg-type]
                              daemon=True)
    thread.start()
    thread.join(10)
    return results


def test_other_points_pass_straight_through(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv(faults.ENV_POINT, "somewhere-else")
    monkeypatch.setenv(faults.ENV_MARKER, str(tmp_path / "marker"))

    async def scenario() -> str:
        await asyncio.wait_for(faults.checkpoint("pulled"), 1)
        return "passed"

    assert _in_thread(scenario()) == ["passed"]
    assert not (tmp_path / "marker").exists()


def test_a_paused_point_leaves_the_event_loop_running(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv(faults.ENV_POINT, "pulled")
    monkeypatch.setenv(faults.ENV_MARKER, str(marker))

    async def scenario() -> tuple[int, bool, str]:
        paused = asyncio.ensure_future(faults.checkpoint("pulled"))
        ticks = 0
        for _ in range(20):  # other work (requests, the status cache) goes on meanwhile
            await asyncio.sleep(0.05)
            ticks += 1
        still_paused = not paused.done()
        paused.cancel()
        return ticks, still_paused, marker.read_text()

    # with a blocking pause the loop never gets back to the ticks and the thread never ends
    assert _in_thread(scenario()) == [(20, True, "pulled")]
