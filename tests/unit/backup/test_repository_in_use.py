"""A repository that a schedule names (an instance's, the default or the system backup's)
cannot be removed; the refusal names the schedules and changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stackhub.backup.models import RepositoryCreate, ScheduleRequest
from stackhub.errors import Invalid
from tests.unit.backup.test_schedules import api_of, wired

__all__ = ["wired"]  # the fixture, shared with test_schedules.py


def named_by_every_schedule(live: Any, tmp_path: Path) -> Any:
    """Add the repository disk2 and name it in blog's, the default and the system schedule."""
    service = live.backups
    service.repos.add(RepositoryCreate(name="disk2", url=str(tmp_path / "disk2")))
    service.set_schedule("blog", ScheduleRequest(repository="disk2"))
    service.set_default_schedule(ScheduleRequest(repository="disk2"))
    service.set_system_schedule(ScheduleRequest(repository="disk2"))
    return service


async def test_a_repository_named_by_schedules_is_not_removed(wired: Any,
                                                               tmp_path: Path) -> None:
    live = wired[0]
    service = named_by_every_schedule(live, tmp_path)
    async with api_of(live) as api:
        path = "/api/backups/repositories/disk2"
        for undo in (lambda: service.remove_schedule("blog"), service.remove_default_schedule,
                     service.remove_system_schedule):
            refused = await api.delete(path)
            assert refused.status_code == 422, refused.text
            message = refused.json()["error"]["message"]
            assert message.startswith("'disk2' is named by backup schedules")
            assert service.repos.get("disk2").name == "disk2"  # nothing changed
            undo()
        assert "blog's" not in message and "the system backup's schedule" in message
        assert (await api.delete(path)).status_code == 204
        assert [r.name for r in service.repos.all()] == ["local"]


def test_the_refusal_names_every_schedule(wired: Any, tmp_path: Path) -> None:
    service = named_by_every_schedule(wired[0], tmp_path)
    with pytest.raises(Invalid) as refused:
        service.remove_repository("disk2")
    assert "blog's, the default, the system backup's schedule" in refused.value.message
    assert service.repos.get("disk2").name == "disk2"
