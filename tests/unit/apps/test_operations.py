"""The operation runner: claims, steps and events, endings, two instances, crash recovery."""

from __future__ import annotations

import asyncio

import pytest

from stackhub.apps.models import InstanceStatus, OperationRead, OperationState
from stackhub.errors import Conflict, EngineError, EngineUnavailable, StorageFull
from stackhub.events import Event
from stackhub.operations.runner import KINDS, OperationKind, Outcome, Run, kind_of
from stackhub.services import Services

from ..support import create_instance, instance_record

CLONE = OperationKind("test-clone", "the clone", None, None, None)


@pytest.fixture(autouse=True)
def clone_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """A two-instance kind, known to the runner only during these tests."""
    monkeypatch.setitem(KINDS, CLONE.name, CLONE)


def installed(svc: Services, name: str, status: str = "running") -> None:
    """An instance whose install finished."""
    op = create_instance(svc.records, instance_record(name, status=status))
    svc.runner.journal.finish(op.id, OperationState.SUCCEEDED, instance_status=None)


def events(svc: Services) -> asyncio.Queue[Event]:
    return svc.bus.subscribe(lambda e: e.topic == "operation").queue


def drained(queue: asyncio.Queue[Event]) -> list[tuple[str, dict[str, object]]]:
    out = []
    while not queue.empty():
        event = queue.get_nowait()
        out.append((event.kind, event.data))
    return out


def test_the_apps_kinds_are_registered() -> None:
    assert {"install", "remove", "start", "stop", "restart"} <= set(KINDS)
    unknown = kind_of("from-a-newer-version")
    assert unknown.interrupted == InstanceStatus.INTERRUPTED


async def test_steps_are_journaled_and_told_and_success_ends_it(live: Services) -> None:
    create_instance(live.records, instance_record("blog"))
    queue = events(live)
    gate = asyncio.Event()

    async def work(run: Run) -> Outcome:
        run.step("first", 10.0)
        await gate.wait()
        run.step("second", 50.0, engine=True)
        return InstanceStatus.STOPPED

    op = live.runner.begin(KINDS["stop"], "blog")
    task = live.runner.start(op, work)
    await asyncio.sleep(0.01)
    with pytest.raises(Conflict, match="'blog' is busy"):
        live.runner.begin(KINDS["start"], "blog")
    assert live.runner.busy("blog")
    gate.set()
    await task
    assert not live.runner.busy("blog")
    got = live.runner.journal.operation(op.id)
    assert (got.state, got.progress, [s.name for s in got.steps]) == (
        OperationState.SUCCEEDED, 100.0, ["first", "second"])
    assert live.records.get("blog").status == InstanceStatus.STOPPED
    told = drained(queue)
    assert [k for k, _ in told] == ["step", "step", "finished"]
    assert told[-1][1]["state"] == "succeeded" and told[0][1]["op_kind"] == "stop"


async def test_run_raises_after_journaling_and_keeps_the_status(live: Services) -> None:
    create_instance(live.records, instance_record("blog"))

    async def work(run: Run) -> Outcome:
        raise EngineError("compose said no")

    op = live.runner.begin(KINDS["start"], "blog")
    with pytest.raises(EngineError, match="compose said no"):
        await live.runner.run(op, work)
    got = live.runner.journal.operation(op.id)
    assert (got.state, got.error) == (OperationState.FAILED, "compose said no")
    record = live.records.get("blog")
    assert (record.status, record.error) == ("running", None)  # a failed start changes nothing
    assert not live.runner.busy("blog")


async def test_an_unexpected_exception_is_a_journaled_internal_error(live: Services) -> None:
    create_instance(live.records, instance_record("blog"))

    async def work(run: Run) -> Outcome:
        raise ZeroDivisionError("oops")

    op = live.runner.begin(KINDS["remove"], "blog")
    await live.runner.start(op, work)
    got = live.runner.journal.operation(op.id)
    assert (got.state, got.error) == (OperationState.FAILED, "internal error: oops")
    assert live.records.get("blog").status == InstanceStatus.FAILED


async def test_prepare_failure_undoes_raises_and_releases(live: Services) -> None:
    record = instance_record("blog", status="installing")
    op = live.runner.begin(KINDS["install"], "blog",
                           create=lambda conn: live.records.insert(conn, record))
    undone: list[str] = []

    def prepare(run: Run) -> None:
        raise StorageFull("the disk is full")

    def undo(run: Run, err: Exception) -> bool:
        undone.append(str(err))
        live.records.delete(run.op.instance)
        return True

    async def never(run: Run) -> Outcome:
        raise AssertionError("work must not run")

    with pytest.raises(StorageFull):
        live.runner.start(op, never, undo=undo, prepare=prepare)
    assert undone and live.records.find("blog") is None
    assert live.runner.journal.operation(op.id).state == OperationState.FAILED
    assert not live.runner.busy("blog")


async def test_cancel_journals_interrupted_with_the_kinds_status(live: Services) -> None:
    create_instance(live.records, instance_record("blog"))

    async def forever(run: Run) -> Outcome:
        run.step("down", 10.0)
        await asyncio.sleep(60)
        return None

    op = live.runner.begin(KINDS["remove"], "blog")
    live.runner.start(op, forever)
    await asyncio.sleep(0.01)
    await live.runner.shutdown()
    got = live.runner.journal.operation(op.id)
    assert got.state == OperationState.INTERRUPTED
    assert "stopped during removal" in (got.error or "")
    assert live.records.get("blog").status == InstanceStatus.INTERRUPTED


async def test_two_instance_operation_claims_both_and_marks_the_target(live: Services) -> None:
    installed(live, "blog")
    installed(live, "copy", "installing")
    gate = asyncio.Event()

    async def work(run: Run) -> Outcome:
        run.step("copy", 50.0)
        await gate.wait()
        raise EngineError("copy failed")

    op = live.runner.begin(CLONE, "blog", target="copy")
    task = live.runner.start(op, work)
    await asyncio.sleep(0.01)
    for name in ("blog", "copy"):
        with pytest.raises(Conflict):
            live.runner.claim(name)
    gate.set()
    await task
    assert live.records.get("copy").status == InstanceStatus.FAILED
    assert live.records.get("blog").status == "running"  # the source is left as it was
    assert not live.runner.busy("blog") and not live.runner.busy("copy")


async def test_recover_closes_what_a_crash_left_running(live: Services) -> None:
    installed(live, "blog")
    installed(live, "copy", "installing")
    installed(live, "web")
    install = create_instance(live.records, instance_record("fresh", status="installing"))
    clone = live.runner.journal.start(CLONE.name, "blog", status=None, target="copy")
    stop = live.runner.journal.start("stop", "web", status=None)
    gone = live.runner.journal.start("remove", "ghost", status=InstanceStatus.REMOVING)
    closed = live.runner.recover(lambda name: live.records.find(name) is not None)
    assert {op.id for op in closed} == {install.id, clone.id, stop.id, gone.id}
    for op in closed:
        got = live.runner.journal.operation(op.id)
        assert got.state == OperationState.INTERRUPTED and "StackHub stopped" in (got.error or "")
    assert live.records.get("fresh").status == InstanceStatus.INTERRUPTED
    assert live.records.get("copy").status == InstanceStatus.INTERRUPTED
    assert live.records.get("blog").status == "running"
    assert live.records.get("web").status == "running"  # a stop keeps what the engine says
    assert "stop it again" in (live.runner.journal.operation(stop.id).error or "")
    assert live.runner.recover(lambda name: True) == []  # nothing left running


async def test_after_crash_hooks_run_for_their_kind_only(live: Services) -> None:
    installed(live, "blog")
    installed(live, "web")
    clone = live.runner.journal.start(CLONE.name, "blog", status=None)
    live.runner.journal.start("stop", "web", status=None)
    seen: list[str] = []

    async def put_back(op: OperationRead) -> None:
        seen.append(op.id)
        raise EngineUnavailable("the engine is down")  # logged, never fatal

    live.runner.after_crash(CLONE.name, put_back)
    await live.flows.recover()
    assert seen == [clone.id]
    assert live.runner.journal.operation(clone.id).state == OperationState.INTERRUPTED


async def test_an_operations_lingering_clean_up_runs_before_the_next_operation(
        live: Services) -> None:
    installed(live, "blog")
    order: list[str] = []
    gate = asyncio.Event()

    async def clean_up() -> None:
        order.append("clean-up starts")
        await gate.wait()
        order.append("clean-up ends")

    async def first(run: Run) -> Outcome:
        live.runner.linger("blog", clean_up())
        return InstanceStatus.RUNNING

    async def second(run: Run) -> Outcome:
        order.append("next operation")
        return InstanceStatus.RUNNING

    await live.runner.run(live.runner.begin(KINDS["restart"], "blog"), first)
    assert live.runner.journal.operations("blog")[0].state == OperationState.SUCCEEDED
    assert not live.runner.busy("blog")  # the operation ended; its clean-up goes on
    task = live.runner.start(live.runner.begin(KINDS["restart"], "blog"), second)
    await asyncio.sleep(0.05)
    assert order == ["clean-up starts"]  # the next one waits
    gate.set()
    await task
    assert order == ["clean-up starts", "clean-up ends", "next operation"]
    assert live.runner.linger("other", asyncio.sleep(0)) is not None
    await live.runner.settled("other", "blog")  # nothing left lingering


async def test_a_two_instance_operations_end_is_told_to_the_targets_followers(
        live: Services) -> None:
    installed(live, "blog")
    installed(live, "copy", "installing")
    queue = live.bus.subscribe(lambda e: e.topic == "instance" and e.key == "copy").queue

    async def work(run: Run) -> Outcome:
        run.step("copy", 50.0)
        return None

    await live.runner.start(live.runner.begin(CLONE, "blog", target="copy"), work)
    told = [(e.kind, e.data.get("state"), e.data.get("operation")) for e in
            (queue.get_nowait() for _ in range(queue.qsize()))]
    assert [kind for kind, _, _ in told] == ["operation"]  # the end only, not each step
    assert told[0][1] == "succeeded"
