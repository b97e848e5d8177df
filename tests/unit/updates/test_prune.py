"""Images an update replaced: kept 7 days for a rollback, then pruned unless in use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stackhub.adapters.fakes import FakeEngine, fake_id
from stackhub.state.db import Database
from stackhub.updates.prune import ImagePruner, Replaced, decide

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def row(image_id: str, days: float) -> Replaced:
    return Replaced(image_id=image_id, ref=f"app:{image_id}", instance="blog",
                    replaced_at=T0 - timedelta(days=days))


def test_only_expired_images_no_container_uses_are_pruned() -> None:
    rows = [row("fresh", 6.9), row("old", 7.0), row("older", 30), row("used", 10)]
    assert [r.image_id for r in decide(rows, {"used"}, T0)] == ["old", "older"]
    assert decide(rows, {"old", "older", "used"}, T0) == []
    assert decide([], set(), T0) == []


@pytest.fixture
def database(tmp_path: Path) -> Database:
    return Database(tmp_path / "t.db")  # migrated on open


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_a_replaced_image_is_kept_for_rollback_then_pruned(database: Database) -> None:
    engine, clock = FakeEngine(), Clock()
    engine.images.update({"app:1", "app:2", "other:1"})
    pruner = ImagePruner(database, engine, clock=clock)
    old_id, new_id = fake_id("image", "app:1"), fake_id("image", "app:2")
    assert pruner.record("blog", {"app:1": old_id, "db:15": "same"},
                         {"app:1": new_id, "db:15": "same"}) == [old_id]
    assert pruner.kept_for("blog") == {"app:1": old_id}
    clock.now = T0 + timedelta(days=6)
    assert pruner.prune() == {} and "app:1" in engine.images
    clock.now = T0 + timedelta(days=7, minutes=1)
    assert pruner.kept_for("blog") == {}  # too late for a rollback to use it
    assert pruner.prune() == {old_id: "removed"}
    assert engine.images == {"app:2", "other:1"}
    assert pruner.pending() == [] and pruner.prune() == {}


def test_an_image_a_container_uses_is_kept(database: Database) -> None:
    engine, clock = FakeEngine(), Clock()
    engine.images.add("app:1")
    engine.add_container("keeper", image="app:1")  # not StackHub's: kept all the same
    pruner = ImagePruner(database, engine, clock=clock)
    pruner.record("blog", {"app:1": fake_id("image", "app:1")}, {"app:1": "sha256:new"})
    clock.now = T0 + timedelta(days=8)
    assert pruner.prune() == {}
    assert "app:1" in engine.images and len(pruner.pending()) == 1


async def test_a_rollback_within_7_days_tags_the_replaced_images_back(live: Any) -> None:
    from stackhub.operations.models import OperationState
    from tests.unit.support import create_instance, instance_record

    record = instance_record("blog")
    op = create_instance(live.records, record)
    live.runner.journal.finish(op.id, OperationState.SUCCEEDED, instance_status="running")
    revisions = live.settings.revisions
    revisions.ensure_first(record)
    revisions.add(record, reason="update to 2.0", snapshot="b" * 64)
    clock = Clock()
    live.pruner.clock = clock
    live.pruner.record("blog", {"app:1": "sha256:old"}, {"app:1": "sha256:new"})
    asked: list[dict[str, str]] = []

    async def rollback(run: Any, snapshot: str, revision: int,
                       images: dict[str, str] | None = None) -> None:
        asked.append(dict(images or {}))

    live.updates.flows.rollback = rollback
    for days, expected in ((6, {"app:1": "sha256:old"}), (8, {})):
        clock.now = T0 + timedelta(days=days)
        accepted = await live.updates.rollback("blog")
        await live.runner.tasks["blog"]
        assert live.apps.operation(accepted.operation.id).state == OperationState.SUCCEEDED
        assert asked[-1] == expected
