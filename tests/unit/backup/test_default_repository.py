"""Changing the default repository: backups and schedules without a repository go there, and
the default cannot be removed (make another one the default first)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from stackhub.adapters.restic import Repository
from stackhub.backup.models import BackupRequest, RepositoryCreate, ScheduleRequest
from stackhub.backup.scheduler import BackupScheduler
from stackhub.operations.runner import Run
from tests.unit.backup.test_schedules import Recorder, api_of, wired

__all__ = ["wired"]  # the fixture, shared with test_schedules.py


class Where(Recorder):
    """Records which repository each backup went to."""

    def __init__(self) -> None:
        super().__init__()
        self.repos: list[str] = []

    async def backup(self, run: Run, repo: Repository, *, kind: str = "manual",
                     stop: bool = True, restart: bool = True,
                     done: Callable[[str], None] | None = None) -> Any:
        self.repos.append(repo.name)
        return await super().backup(run, repo, kind=kind, stop=stop, restart=restart,
                                    done=done)


async def test_the_default_repository_can_be_changed(wired: Any, tmp_path: Path) -> None:
    live, clock, _fake, _audits = wired
    service = live.backups
    fake = Where()
    service.flows.backup = fake.backup
    service.restic = fake
    service.repos.add(RepositoryCreate(name="disk2", url=str(tmp_path / "disk2")))
    assert service.repos.get(None).name == "local"

    async with api_of(live) as api:
        missing = await api.post("/api/backups/repositories/ghost/default")
        assert missing.status_code == 404
        assert service.repos.get(None).name == "local"  # nothing changed
        made = await api.post("/api/backups/repositories/disk2/default")
        assert made.status_code == 200 and made.json()["default"] is True
        listed = (await api.get("/api/backups/repositories")).json()
        assert [(r["name"], r["default"]) for r in listed] == [("disk2", True),
                                                               ("local", False)]

        # a backup without --repo and a schedule without a repository go to the new default
        _accepted, task = await service.start_backup("blog", BackupRequest())
        await task
        service.set_schedule("blog", ScheduleRequest(at="03:00"))
        clock.set("2026-03-03T02:00:00")
        assert await BackupScheduler(service).tick() == {"backup:blog": True}
        assert fake.repos == ["disk2", "disk2"]
        assert service.status("blog")[0].last_repository == "disk2"

        # the default cannot be removed; the old one now can, and is not made again
        refused = await api.delete("/api/backups/repositories/disk2")
        assert refused.status_code == 422
        assert "make another repository the default first" in refused.json()["error"]["message"]
        assert service.repos.get("disk2").default
        assert (await api.delete("/api/backups/repositories/local")).status_code == 204
        service.repos.ensure_default()  # as at the next start
        assert [r.name for r in service.repos.all()] == ["disk2"]
