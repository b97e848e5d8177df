"""Fixtures for the unit tests: a private data root, fake adapters and wired services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from stackhub.adapters.fakes import FakeCompose, FakeEngine
from stackhub.apps import flows as flows_module
from stackhub.apps import ports as ports_module
from stackhub.config import Paths
from stackhub.services import Services, build

from .support import DB_IMAGE, IMAGE


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the real data root, server, token and official store."""
    monkeypatch.setenv("STACKHUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STACKHUB_OFFICIAL_STORE", str(tmp_path / "no-official-store"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("TZ", "Europe/Berlin")
    for name in ("STACKHUB_URL", "STACKHUB_TOKEN", "STACKHUB_FAULT_PAUSE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake containers do not crash on their own: skip the readiness settle time."""
    monkeypatch.setattr(flows_module, "SETTLE", 0.0)
    monkeypatch.setattr(flows_module, "POLL_FAST", 0.01)


@pytest.fixture(autouse=True)
def busy_host_ports(monkeypatch: pytest.MonkeyPatch) -> set[int]:
    """Host ports the allocator sees as taken; the real host is never probed."""
    busy: set[int] = set()
    monkeypatch.setattr(ports_module, "host_port_free",
                        lambda port, protocol="tcp": port not in busy)
    return busy


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    """A fresh data root."""
    root = Paths(tmp_path / "data")
    root.ensure()
    return root


@pytest.fixture
def engine() -> FakeEngine:
    """A fake engine that can pull the two test images."""
    fake = FakeEngine()
    fake.allow_pull(IMAGE, 10.0, 55.0, 90.0)
    fake.allow_pull(DB_IMAGE, 50.0)
    return fake


@pytest.fixture
def compose(engine: FakeEngine) -> FakeCompose:
    """A fake compose acting on the fake engine."""
    return FakeCompose(engine)


@pytest.fixture
def services(paths: Paths, engine: FakeEngine, compose: FakeCompose) -> Iterator[Services]:
    """Services wired to the fakes (the event bus is not bound to a loop)."""
    svc = build(paths, engine=engine, compose=compose, public_host="host.test")
    yield svc
    svc.db.close()


@pytest.fixture
async def live(services: Services) -> AsyncIterator[Services]:
    """Services whose event bus is bound to the test's loop; background tasks are awaited."""
    services.bus.bind(asyncio.get_running_loop())
    yield services
    for task in list(services.runner.tasks.values()):
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
