"""Following one operation as JSON lines."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import BaseModel

from stackhub.apps import follow
from stackhub.apps.models import OperationRead, OperationState
from stackhub.errors import NotFound
from stackhub.events import Event, EventBus


def operation(state: OperationState, step: str = "pull", progress: float = 10.0) -> OperationRead:
    return OperationRead(id="op1", instance="blog", kind="install", state=state, step=step,
                         progress=progress, error=None, started_at="t0",
                         finished_at=None if state == OperationState.RUNNING else "t1")


class View(BaseModel):
    name: str
    status: str


def describe(name: str) -> View | None:
    return View(name=name, status="running") if name == "blog" else None


class Journal:
    """The operations a loader can see, changed by the test as the operation moves on."""

    def __init__(self, op: OperationRead) -> None:
        self.ops = {op.id: op}

    def load(self, op_id: str) -> OperationRead:
        if op_id not in self.ops:
            raise NotFound(f"no operation {op_id!r}")
        return self.ops[op_id]


async def collect(stream: Any) -> list[dict[str, Any]]:
    return [json.loads(line) async for line in stream]


def no_pulls(op_id: str) -> list[dict[str, object]]:
    return []


def event(kind: str, op_id: str = "op1", **data: object) -> Event:
    return Event("operation", "blog", kind, {"operation": op_id, **data})


async def test_a_finished_operation_gives_its_state_and_record_at_once() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    journal = Journal(operation(OperationState.SUCCEEDED, "verify", 100.0))
    lines = await collect(follow.follow_operation(bus, journal.load, describe, no_pulls, "op1"))
    assert [line["kind"] for line in lines] == ["state", "result"]
    assert lines[0]["data"]["progress"] == 100.0
    assert lines[1]["data"]["operation"]["state"] == "succeeded"
    assert lines[1]["data"]["instance"] == {"name": "blog", "status": "running"}
    assert not bus._subs  # the subscription ends with the stream


async def test_live_events_then_the_journaled_result() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    journal = Journal(operation(OperationState.RUNNING))
    stream = follow.follow_operation(bus, journal.load, describe, no_pulls, "op1")
    assert not bus._subs, "nothing is subscribed before the stream runs"
    first = json.loads(await anext(stream))  # subscribed, then the journal read
    assert first["kind"] == "state" and len(bus._subs) == 1
    bus.publish(event("pull", image="web:1", percent=50.0, progress=30.0))
    bus.publish(event("step", op_id="other", step="up"))  # another operation: not shown
    journal.ops["op1"] = operation(OperationState.FAILED, "up", 70.0)
    bus.publish(event("finished", state="failed", error="boom"))
    lines = [first, *await collect(stream)]
    assert [line["kind"] for line in lines] == ["state", "pull", "finished", "result"]
    assert lines[1]["data"]["percent"] == 50.0
    assert lines[-1]["data"] == {"operation": lines[-1]["data"]["operation"], "instance": None}
    assert lines[-1]["data"]["operation"]["state"] == "failed"


async def test_an_end_without_an_event_is_found_in_the_journal(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(follow, "QUIET_RECHECK", 0.05)
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    journal = Journal(operation(OperationState.RUNNING))
    stream = follow.follow_operation(bus, journal.load, describe, no_pulls, "op1")
    task = asyncio.ensure_future(collect(stream))
    await asyncio.sleep(0.02)
    assert not task.done()
    journal.ops["op1"] = operation(OperationState.INTERRUPTED)
    lines = await asyncio.wait_for(task, 10)
    assert [line["kind"] for line in lines] == ["state", "ping", "result"]  # ping: still alive
    assert lines[-1]["data"]["operation"]["state"] == "interrupted"
    assert lines[-1]["data"]["instance"] is None


async def test_an_unknown_operation_is_refused_before_streaming() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    with pytest.raises(NotFound):
        follow.follow_operation(bus, Journal(operation(OperationState.RUNNING)).load, describe,
                                no_pulls, "nope")
    assert not bus._subs


async def test_a_stream_never_read_leaves_no_subscription() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    stream = follow.follow_operation(bus, Journal(operation(OperationState.RUNNING)).load,
                                     describe, no_pulls, "op1")
    del stream  # the client left before the body was sent
    assert not bus._subs


async def test_a_late_follower_gets_the_last_pull_of_each_image_then_live_events() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    journal = Journal(operation(OperationState.RUNNING))
    earlier = {"op1": [{"operation": "op1", "image": "web:1", "percent": 100.0},
                       {"operation": "op1", "image": "db:2", "percent": 40.0}]}
    stream = follow.follow_operation(bus, journal.load, describe,
                                     lambda op_id: earlier.get(op_id, []), "op1")
    first = json.loads(await anext(stream))
    bus.publish(event("pull", image="db:2", percent=70.0))  # after subscribing: live
    journal.ops["op1"] = operation(OperationState.SUCCEEDED, "verify", 100.0)
    bus.publish(event("finished", state="succeeded"))
    lines = [first, *await collect(stream)]
    assert [(line["kind"], line["data"].get("image"), line["data"].get("percent"))
            for line in lines[:4]] == [("state", None, None), ("pull", "web:1", 100.0),
                                        ("pull", "db:2", 40.0), ("pull", "db:2", 70.0)]
    assert [line["kind"] for line in lines[4:]] == ["finished", "result"]
