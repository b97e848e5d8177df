"""Instance status: derived from the journal and the engine, cached from engine events."""

from __future__ import annotations

import asyncio
import threading

import pytest

from stackhub import labels
from stackhub.adapters.engine import ContainerInfo
from stackhub.adapters.fakes import FakeEngine
from stackhub.apps.models import InstanceStatus
from stackhub.apps.status import StatusCache, derive
from stackhub.events import EventBus

from ..support import drain


def box(state: str = "running", health: str | None = None) -> ContainerInfo:
    return ContainerInfo(id=state + str(health), name="c", state=state, health=health)


@pytest.mark.parametrize("journal", ["installing", "removing", "failed", "interrupted"])
def test_busy_and_broken_journal_states_win(journal: str) -> None:
    assert derive(journal, [box()]) == InstanceStatus(journal)
    assert derive(journal, []) == InstanceStatus(journal)


@pytest.mark.parametrize(("containers", "expected"), [
    ([], InstanceStatus.MISSING),
    ([box("exited"), box("created")], InstanceStatus.STOPPED),
    ([box("running"), box("exited")], InstanceStatus.PARTIAL),
    ([box("running"), box("restarting")], InstanceStatus.PARTIAL),
    ([box("running", "healthy"), box("running", "unhealthy")], InstanceStatus.UNHEALTHY),
    ([box("running", "starting"), box("running")], InstanceStatus.STARTING),
    ([box("running", "starting"), box("running", "unhealthy")], InstanceStatus.UNHEALTHY),
    ([box("running", "healthy"), box("running")], InstanceStatus.RUNNING),
])
@pytest.mark.parametrize("journal", ["running", "stopped", "starting", "partial", "unhealthy",
                                     "missing"])
def test_engine_decides_for_settled_instances(journal: str, containers: list[ContainerInfo],
                                              expected: InstanceStatus) -> None:
    assert derive(journal, containers) == expected


def test_unknown_journal_status_is_an_error() -> None:
    with pytest.raises(ValueError, match="bogus"):
        derive("bogus", [])


def test_every_status_is_reachable() -> None:
    reached = {derive(s, []) for s in ("installing", "removing", "failed", "interrupted")}
    reached |= {derive("running", c) for c in (
        [], [box("exited")], [box(), box("exited")], [box("running", "unhealthy")],
        [box("running", "starting")], [box()])}
    reached.add(derive("running", [box()], engine=False))
    assert reached == set(InstanceStatus)


# -- the cache ----------------------------------------------------------------------------------

async def test_refresh_groups_by_instance_and_publishes_changes() -> None:
    engine, bus = FakeEngine(), EventBus()
    bus.bind(asyncio.get_running_loop())
    queue = bus.subscribe(lambda e: e.topic == "instance").queue
    engine.add_instance_container("blog", "web")
    engine.add_instance_container("blog", "db")
    engine.add_instance_container("wiki", "web", state="exited")
    engine.add_container("unrelated")
    cache = StatusCache(engine, bus)
    cache.refresh()
    assert sorted(c.service or "" for c in cache.containers("blog")) == ["db", "web"]
    assert [c.state for c in cache.containers("wiki")] == ["exited"]
    assert cache.containers("nope") == [] and cache.engine_ok
    assert sorted(e.key for e in drain(queue)) == ["blog", "wiki"]
    cache.refresh()
    assert drain(queue) == []  # nothing changed, nothing published
    engine.set_state("stackhub-wiki", "running")
    cache.refresh()
    events = drain(queue)
    assert [e.key for e in events] == ["wiki"]
    assert events[0].data["containers"][0]["state"] == "running"


def test_forged_instance_labels_are_ignored() -> None:
    engine = FakeEngine()
    engine.add_container("imposter", labels_={labels.MANAGED: "true", labels.INSTANCE: "blog",
                                              labels.COMPOSE_PROJECT: "someone-else"})
    cache = StatusCache(engine, EventBus())
    cache.refresh()
    assert cache.containers("blog") == []


def test_pump_refreshes_on_engine_events() -> None:
    engine = FakeEngine()
    cache = StatusCache(engine, EventBus())
    loop = asyncio.new_event_loop()
    worker = threading.Thread(target=cache._pump, args=(loop,))
    worker.start()
    try:
        engine.add_instance_container("blog")
        engine.event_queue.put({"Type": "container", "Action": "start"})
        for _ in range(4000):
            if cache.containers("blog"):
                break
            threading.Event().wait(0.005)
        assert len(cache.containers("blog")) == 1
    finally:
        cache._stop.set()
        worker.join(15)
        loop.close()
    assert not worker.is_alive()


async def test_start_and_stop_follow_the_engine() -> None:
    engine = FakeEngine()
    engine.add_instance_container("blog")
    cache = StatusCache(engine, EventBus())
    await cache.start()
    for _ in range(4000):
        if cache.engine_ok:
            break
        await asyncio.sleep(0.005)
    assert cache.containers("blog") and cache.refreshes >= 1
    await asyncio.wait_for(cache.stop(), 15)


async def test_engine_unavailable_is_noted() -> None:
    engine = FakeEngine()
    engine.available = False
    cache = StatusCache(engine, EventBus())
    cache.engine_ok = True
    await cache.start()
    for _ in range(4000):  # the failed list is marked in a worker thread: wait for both
        if ("containers", "") in engine.calls and cache.engine_ok is False:
            break
        await asyncio.sleep(0.005)
    assert ("containers", "") in engine.calls
    assert cache.engine_ok is False
    await asyncio.wait_for(cache.stop(), 15)
