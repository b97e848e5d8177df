"""Engine outages: the cache notices, statuses become unknown, actions are refused unjournaled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from stackhub.adapters.fakes import FakeEngine
from stackhub.apps.models import InstanceStatus, OperationState
from stackhub.apps.status import StatusCache
from stackhub.errors import EngineError, EngineUnavailable
from stackhub.events import Event, EventBus
from stackhub.operations.runner import KINDS, OperationKind, Outcome, Run
from stackhub.services import Services

from ..support import create_instance, drain, instance_record


def installed(svc: Services, name: str, status: str = "running") -> None:
    """An instance whose install finished."""
    op = create_instance(svc.records, instance_record(name, status=status))
    svc.runner.journal.finish(op.id, OperationState.SUCCEEDED, instance_status=None)


async def eventually(check: Callable[[], bool], within: float = 20.0) -> float:
    """Wait until `check` holds; return how long it took (fails after `within` seconds)."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > within:
            raise AssertionError(f"not true within {within} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - began


# -- the cache's engine state -------------------------------------------------------------------

async def test_a_failed_list_marks_the_engine_down_once_and_a_good_one_up() -> None:
    engine, bus = FakeEngine(), EventBus()
    bus.bind(asyncio.get_running_loop())
    queue = bus.subscribe(lambda e: e.topic == "engine").queue
    cache = StatusCache(engine, bus)
    assert cache.engine_state().model_dump() == {"engine": False, "error": None, "since": None}
    cache.check_engine()  # not known to be down before the first contact
    cache.refresh()
    assert cache.engine_ok and not cache.engine_down
    engine.available = False
    for _ in range(2):
        with pytest.raises(EngineUnavailable):
            cache.refresh()
    state = cache.engine_state()
    assert (state.engine, cache.outages) == (False, 1)
    assert "not reachable" in (state.error or "") and state.since
    with pytest.raises(EngineUnavailable, match=r"not reachable since .*Nothing was changed"):
        cache.check_engine()
    assert cache.verify() is False
    engine.available = True
    assert cache.verify() is True
    cache.check_engine()
    told: list[Event] = drain(queue)
    assert [e.kind for e in told] == ["up", "down", "up"]
    assert told[1].data["engine"] is False and told[1].data["error"]
    assert told[2].data == {"engine": True, "error": None, "since": told[2].data["since"]}


async def test_follow_notices_an_outage_and_the_return_within_two_seconds() -> None:
    engine = FakeEngine()
    engine.add_instance_container("blog")
    cache = StatusCache(engine, EventBus())
    await cache.start()
    try:
        await eventually(lambda: cache.engine_ok)
        engine.available = False
        assert await eventually(lambda: cache.engine_down) < 2.0
        await asyncio.sleep(1.5)  # the backoff has reached its cap
        engine.set_state("stackhub-blog", "exited")
        engine.available = True
        assert await eventually(lambda: cache.engine_ok) < 2.0
        assert [c.state for c in cache.containers("blog")] == ["exited"]  # re-listed
    finally:
        await asyncio.wait_for(cache.stop(), 15)


# -- instances and actions while the engine is down ----------------------------------------------

async def test_statuses_are_unknown_while_the_engine_is_down(live: Services,
                                                             engine: FakeEngine) -> None:
    installed(live, "blog")
    installed(live, "wiki", status="failed")
    engine.add_instance_container("blog")
    live.status.refresh()
    assert live.apps.get("blog").status == InstanceStatus.RUNNING
    engine.available = False
    assert not live.status.verify()
    blog = live.apps.get("blog")
    assert (blog.status, blog.status_reason) == (InstanceStatus.UNKNOWN, "engine unreachable")
    assert [c.state for c in blog.containers] == ["unknown"]
    wiki = live.apps.get("wiki")  # what the journal knows is still true
    assert (wiki.status, wiki.status_reason) == (InstanceStatus.FAILED, None)
    engine.available = True
    live.status.refresh()
    blog = live.apps.get("blog")
    assert (blog.status, blog.status_reason) == (InstanceStatus.RUNNING, None)


@pytest.mark.parametrize("verb", ["start", "stop", "restart"])
async def test_actions_are_refused_at_once_and_not_journaled(live: Services, engine: FakeEngine,
                                                             verb: str) -> None:
    installed(live, "blog")
    engine.available = False
    live.status.verify()
    before = live.runner.journal.operations("blog")
    with pytest.raises(EngineUnavailable, match="engine is not reachable"):
        await live.apps.lifecycle("blog", verb)
    with pytest.raises(EngineUnavailable):
        await live.apps.remove("blog", purge=False)
    assert live.runner.journal.operations("blog") == before
    assert not live.runner.busy("blog")


async def test_install_is_refused_before_anything_is_written(live: Services,
                                                             engine: FakeEngine) -> None:
    from ..support import app_request

    engine.available = False
    live.status.verify()
    with pytest.raises(EngineUnavailable):
        await live.apps.install(app_request())
    assert live.records.find("blog") is None
    assert not live.paths.instance_dir("blog").exists()
    assert live.runner.journal.operations("blog") == []


async def test_kinds_that_do_not_need_the_engine_are_not_refused(
        live: Services, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    local = OperationKind("test-local", "a local job", None, None, None, engine=False)
    monkeypatch.setitem(KINDS, local.name, local)
    installed(live, "blog")
    engine.available = False
    live.status.verify()

    async def work(_run: Run) -> Outcome:
        return None

    op = live.runner.begin(local, "blog")
    await live.runner.run(op, work)
    assert live.runner.journal.operation(op.id).state == OperationState.SUCCEEDED


async def test_an_operation_cut_by_the_engine_ends_interrupted(live: Services,
                                                               engine: FakeEngine) -> None:
    installed(live, "blog")
    queue = live.bus.subscribe(lambda e: e.topic == "operation").queue

    async def work(_run: Run) -> Outcome:
        engine.available = False
        raise EngineUnavailable("lost the connection to the Docker engine")

    op = live.runner.begin(KINDS["install"], "blog")
    with pytest.raises(EngineUnavailable):
        await live.runner.run(op, work)
    got = live.runner.journal.operation(op.id)
    assert got.state == OperationState.INTERRUPTED
    assert "became unreachable during the install" in (got.error or "")
    assert live.records.get("blog").status == InstanceStatus.INTERRUPTED
    assert live.status.engine_down
    finished = [e for e in drain(queue) if e.kind == "finished"]
    assert finished[-1].data["state"] == "interrupted"


async def test_an_engine_error_with_the_engine_up_still_fails(live: Services) -> None:
    installed(live, "blog")

    async def work(_run: Run) -> Outcome:
        raise EngineError("the app's containers are stopped after start")

    op = live.runner.begin(KINDS["install"], "blog")
    with pytest.raises(EngineError):
        await live.runner.run(op, work)
    assert live.runner.journal.operation(op.id).state == OperationState.FAILED
    assert live.records.get("blog").status == InstanceStatus.FAILED


async def test_an_engine_error_after_an_outage_during_the_run_is_an_interruption(
        live: Services, engine: FakeEngine) -> None:
    installed(live, "blog")

    async def work(_run: Run) -> Outcome:
        engine.available = False
        live.status.verify()  # the cache saw the outage...
        engine.available = True
        live.status.refresh()  # ...and the engine is back by the time the failure is judged
        raise EngineError("container stackhub-blog-web-1 stopped (exit code 143)")

    op = live.runner.begin(KINDS["install"], "blog")
    with pytest.raises(EngineUnavailable, match="went away"):
        await live.runner.run(op, work)
    assert live.runner.journal.operation(op.id).state == OperationState.INTERRUPTED
