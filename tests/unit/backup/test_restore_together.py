"""The restore's side-by-side steps: the first failure stops the others; nothing outlives it."""

from __future__ import annotations

import asyncio

import pytest

from stackhub.backup.flows import together
from stackhub.errors import EngineError


async def test_the_first_failure_cancels_the_other_steps_and_is_raised() -> None:
    ended: list[str] = []

    async def long_step() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            ended.append("long")

    async def failing() -> None:
        await asyncio.sleep(0.01)
        raise EngineError("restic could not read the snapshot")

    with pytest.raises(EngineError, match="could not read"):
        await asyncio.wait_for(together(long_step(), failing()), 5)
    assert ended == ["long"]  # cancelled and finished before together() returned


async def test_steps_that_all_succeed_all_finish() -> None:
    done: list[int] = []

    async def step(n: int) -> None:
        await asyncio.sleep(0.01 * n)
        done.append(n)

    await together(step(2), step(1), step(0))
    assert sorted(done) == [0, 1, 2]


async def test_cancelling_the_caller_leaves_no_step_running() -> None:
    ended: list[str] = []

    async def long_step(tag: str) -> None:
        try:
            await asyncio.sleep(30)
        finally:
            ended.append(tag)

    caller = asyncio.ensure_future(together(long_step("a"), long_step("b")))
    await asyncio.sleep(0.02)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert sorted(ended) == ["a", "b"]
