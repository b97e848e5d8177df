"""A hung engine (a SIGSTOPped dockerd) is told within 2 s; StackHub starting before the engine."""

from __future__ import annotations

import asyncio
import threading

import pytest

from stackhub.adapters.fakes import FakeEngine
from stackhub.apps import status as status_module
from stackhub.apps.models import InstanceStatus, OperationState
from stackhub.apps.status import StatusCache
from stackhub.errors import EngineUnavailable
from stackhub.events import EventBus
from stackhub.services import Services

from ..support import create_instance, instance_record
from .test_engine_outage import eventually


async def test_a_hung_engine_is_marked_down_within_two_seconds_and_up_when_it_answers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted in pings, not timed (a loaded box stalls threads): down at the second miss."""
    # each miss waits PROBE_TIMEOUT: down within PROBE_INTERVAL + 2 * PROBE_TIMEOUT
    assert status_module.PROBE_INTERVAL + 2 * status_module.PROBE_TIMEOUT < 2.0
    engine = FakeEngine()
    engine.add_instance_container("blog")
    cache = StatusCache(engine, EventBus())
    pings: list[tuple[bool, float, bool]] = []  # (the prober's thread, timeout, answered)
    marks: list[tuple[bool, int]] = []  # (up, pings made until then)
    probe, mark = engine.probe, cache._mark

    def pinging(timeout: float) -> None:
        prober = threading.current_thread().name == "engine-probe"
        try:
            probe(timeout)
        except EngineUnavailable:
            pings.append((prober, timeout, False))
            raise
        pings.append((prober, timeout, True))

    def marking(ok: bool, error: str | None = None) -> None:
        marks.append((ok, len(pings)))
        mark(ok, error)

    monkeypatch.setattr(engine, "probe", pinging)
    monkeypatch.setattr(cache, "_mark", marking)
    await cache.start()
    try:
        await eventually(lambda: cache.engine_ok)
        hung_at = len(pings)
        engine.hung = True
        await eventually(lambda: cache.engine_down)
        down = [n for ok, n in marks if not ok]
        assert len(down) == 1
        assert [p for p in pings[hung_at:down[0]] if not p[2]] == [
            (True, status_module.PROBE_TIMEOUT, False)] * 2  # two misses, then down
        assert "does not answer" in (cache.engine_state().error or "")
        with pytest.raises(EngineUnavailable, match="not reachable since"):
            cache.check_engine()
        asked_at = len(pings)  # a request asking again fails after one short ping
        assert await asyncio.to_thread(cache.verify) is False
        assert [p for p in pings[asked_at:] if not p[0]] == [
            (False, status_module.PROBE_TIMEOUT, False)]
        engine.set_state("stackhub-blog", "exited")
        answered_at = len(pings)
        engine.hung = False
        await eventually(lambda: cache.engine_ok)
        up = [n for ok, n in marks if ok and n > answered_at]
        assert [p for p in pings[answered_at:up[0]] if p[0] and p[2]] == [
            (True, status_module.PROBE_TIMEOUT, True)]  # up on the first ping answered
        assert [c.state for c in cache.containers("blog")] == ["exited"]  # re-listed
    finally:
        engine.hung = False
        await asyncio.wait_for(cache.stop(), 15)


async def test_one_slow_ping_alone_does_not_mark_the_engine_down(
        monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine()
    misses = [1]
    real = engine.probe

    def flaky(timeout: float) -> None:
        if misses[0]:
            misses[0] -= 1
            raise EngineUnavailable("the Docker engine does not answer")
        real(timeout)

    monkeypatch.setattr(engine, "probe", flaky)
    cache = StatusCache(engine, EventBus())
    await cache.start()
    try:
        await eventually(lambda: cache.engine_ok)
        await asyncio.sleep(4 * status_module.PROBE_INTERVAL)
        assert misses == [0] and cache.outages == 0
    finally:
        await asyncio.wait_for(cache.stop(), 15)


async def test_recover_before_the_engine_waits_then_reconciles(live: Services,
                                                               engine: FakeEngine) -> None:
    """StackHub started first (at boot): recovery's engine half runs once the engine answers."""
    op = create_instance(live.records, instance_record("blog", status="running"))
    live.runner.journal.finish(op.id, OperationState.SUCCEEDED, instance_status=None)
    engine.add_instance_container("blog")
    engine.add_instance_container("ghost")  # no record: an orphan to remove
    engine.available = False
    report = await live.flows.recover()
    assert report == {"interrupted": [], "orphans": []}
    assert live.flows.reconciling is not None
    await live.status.start()
    try:
        await eventually(lambda: live.status.engine_down)
        assert live.apps.get("blog").status == InstanceStatus.UNKNOWN
        await asyncio.sleep(0.3)
        assert not live.flows.reconciling.done()  # still waiting
        assert engine.called("remove_container") == []
        engine.available = True
        await asyncio.wait_for(live.flows.reconciling, 15)
        assert len(engine.called("remove_container")) == 1
        assert [c.instance for c in engine.containers()] == ["blog"]
        assert live.apps.get("blog").status == InstanceStatus.RUNNING
    finally:
        await live.flows.close()
        await asyncio.wait_for(live.status.stop(), 15)


async def test_every_cached_instance_is_told_when_the_engine_goes_and_comes_back() -> None:
    """Consoles showing an instance reload it: unknown while down, exact again after."""
    from ..support import drain

    engine, bus = FakeEngine(), EventBus()
    bus.bind(asyncio.get_running_loop())
    queue = bus.subscribe(lambda e: e.topic == "instance").queue
    engine.add_instance_container("blog")
    engine.add_instance_container("wiki", state="exited")
    cache = StatusCache(engine, bus)
    cache.refresh()
    drain(queue)
    engine.available = False
    assert cache.verify() is False
    told = drain(queue)
    assert sorted((e.key, e.kind) for e in told) == [("blog", "engine"), ("wiki", "engine")]
    assert told[0].data["engine"] is False
    engine.available = True
    assert cache.verify() is True  # containers unchanged: only the engine events say so
    told = drain(queue)
    assert sorted((e.key, e.kind) for e in told) == [("blog", "engine"), ("wiki", "engine")]
    assert told[0].data["engine"] is True
