"""An update pulls its images side by side and reports a failed pull once all have ended."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from stackhub.errors import EngineError
from stackhub.updates.flows import UpdateFlows


class Engine:
    """Pulls that meet at a barrier: they pass only if they run at the same time."""

    def __init__(self, images: int, fails: str | None = None) -> None:
        self.barrier = threading.Barrier(images, timeout=5)
        self.fails = fails
        self.ended: list[str] = []

    def pull(self, image: str, _progress: object) -> None:
        self.barrier.wait()  # a pull after another (not beside it) breaks the barrier
        if image == self.fails:
            raise EngineError(f"pulling {image} failed")
        self.ended.append(image)


class FakeRun:
    """Records the events an update publishes."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, kind: str, **data: Any) -> None:
        self.events.append({"kind": kind, **data})


def flows(engine: Engine, tmp_path: Path) -> UpdateFlows:
    apps = SimpleNamespace(flows=SimpleNamespace(engine=engine))
    runner = SimpleNamespace(after_crash=lambda *_a: None)
    return UpdateFlows(apps=apps, runner=runner, snapshots=SimpleNamespace(),  # type: ignore[arg-type]
                       images=SimpleNamespace(), root=tmp_path)  # type: ignore[arg-type]


def test_the_images_are_pulled_side_by_side(tmp_path: Path) -> None:
    engine = Engine(3)
    run = FakeRun()
    asyncio.run(flows(engine, tmp_path)._pull(run, ["a:1", "b:1", "c:1"]))  # type: ignore[arg-type]
    assert sorted(engine.ended) == ["a:1", "b:1", "c:1"]
    progress = [e["progress"] for e in run.events if e["kind"] == "progress"]
    assert progress == pytest.approx([5.0 + 25.0 / 3, 5.0 + 50.0 / 3, 30.0])


def test_a_failed_pull_is_raised_after_the_others_ended(tmp_path: Path) -> None:
    engine = Engine(2, fails="a:1")
    run = FakeRun()
    with pytest.raises(EngineError, match="pulling a:1 failed"):
        asyncio.run(flows(engine, tmp_path)._pull(run, ["a:1", "b:1"]))  # type: ignore[arg-type]
    assert engine.ended == ["b:1"]
    assert [e["image"] for e in run.events] == ["b:1"]
