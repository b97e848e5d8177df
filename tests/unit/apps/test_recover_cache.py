"""Recovery after a crash leaves the status cache matching the engine (issue 20, item 3)."""

from __future__ import annotations

from stackhub.adapters.fakes import FakeEngine
from stackhub.services import Services


async def test_recover_refreshes_the_status_cache(live: Services, engine: FakeEngine) -> None:
    # an install whose record was rolled back left containers behind; the cache listed them
    engine.add_instance_container("ghost", "web")
    engine.add_instance_container("ghost", "db", state="exited")
    live.status.refresh()
    assert sorted(c.service for c in live.status.containers("ghost")) == ["db", "web"]
    before = live.status.refreshes
    report = await live.flows.recover()
    assert report["orphans"] == ["ghost"]
    assert [c for c in engine.containers() if c.instance == "ghost"] == []
    # the cache was re-listed after the orphans went, not left with containers that are gone
    assert live.status.refreshes > before
    assert live.status.containers("ghost") == []
