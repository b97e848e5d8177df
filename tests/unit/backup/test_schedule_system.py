"""The system backup's schedule: run by the same scheduler on a fake clock, its retention on
scheduled system snapshots only, missing and failed notices, and the API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from stackhub.adapters.restic import ForgetPlan, Repository, Snapshot
from stackhub.auth.models import Principal, Role
from stackhub.backup.models import BackupHealth, Every, ScheduleRequest
from stackhub.backup.scheduler import BackupScheduler
from stackhub.errors import NotFound
from stackhub.notify.models import Kind
from stackhub.notify.watch import Usage, Watcher
from tests.unit.backup.test_schedules import api_of, wired

__all__ = ["wired"]  # the fixture, shared with test_schedules.py
ADMIN = Principal(name="alice", role=Role.ADMIN, via="session")
SELECTED = ["stackhub", "system", "kind=system", "trigger=scheduled"]


def snap(letter: str, *tags: str) -> Snapshot:
    return Snapshot(id=letter * 64, time="2026-03-01T00:00:00Z", tags=list(tags))


class SystemRestic:
    """restic for the system backup: its snapshot, listing and retention plan."""

    def __init__(self) -> None:
        self.written: list[list[str]] = []
        self.selected: list[list[str]] = []
        self.plans: list[dict[str, int]] = []
        self.forgotten: list[str] = []
        self.fail_backup = False
        self.keep = [snap("e", *SELECTED)]
        self.remove: list[Snapshot] = []

    async def init(self, repo: Repository) -> None:
        return None

    async def add_light_key(self, repo: Repository) -> str:
        return "c" * 64

    async def forget(self, repo: Repository, snapshot_ids: list[str]) -> None:
        self.forgotten += snapshot_ids

    async def backup(self, repo: Repository, paths: list[str], *, cwd: Path, host: str,
                     report: Callable[[Any], None], tags: list[str]) -> Any:
        if self.fail_backup:
            from stackhub.errors import RepositoryError

            raise RepositoryError("the repository is unreachable")
        self.written.append(list(tags))
        return SimpleNamespace(snapshot_id="d" * 64)

    async def snapshots(self, repo: Repository, *, tags: list[str] | None = None) -> Any:
        return [snap("d", *self.written[-1])] if self.written else []

    async def forget_plan(self, repo: Repository, *, tags: list[str], host: str,
                          keep: dict[str, int]) -> ForgetPlan:
        self.selected.append(list(tags))
        self.plans.append(dict(keep))
        return ForgetPlan(keep=self.keep, remove=self.remove)


@pytest.fixture
def system(wired: Any) -> tuple[Any, Any, SystemRestic, list[Any]]:
    live, clock, _fake, audits = wired
    fake = SystemRestic()
    live.backups.restic = fake
    live.backups.system.restic = fake
    return live, clock, fake, audits


async def test_the_system_backup_runs_on_its_schedule_and_prunes_only_its_own(
        system: Any) -> None:
    live, clock, fake, audits = system
    service = live.backups
    read = service.set_system_schedule(ScheduleRequest(at="02:30", keep_daily=7,
                                                       keep_weekly=0, keep_monthly=0))
    assert read.next_run_at == "2026-03-03T01:30:00Z"  # 02:30 in Berlin
    assert read.status.instance == "@system" and read.status.schedule_source == "system"
    scheduler = BackupScheduler(service)
    clock.set("2026-03-03T01:29:00")
    assert await scheduler.tick() == {}
    clock.set("2026-03-03T01:30:00")
    assert await scheduler.tick() == {"backup:@system": True}
    assert "trigger=scheduled" in fake.written[0] and "kind=system" in fake.written[0]
    assert fake.selected == [SELECTED]  # never another instance's snapshots
    assert fake.plans == [{"last": 0, "daily": 7, "weekly": 0, "monthly": 0}]
    assert await scheduler.tick() == {}  # not again before its next time
    status = service.system_status()
    assert status.health is BackupHealth.OK and status.last_snapshot == "d" * 64
    assert audits[-1][:3] == ("backup.system.scheduled", "@system", True)

    # a plan that would remove anything but a scheduled system snapshot removes nothing
    for stray in (snap("a", "stackhub", "instance=blog", "kind=scheduled"),
                  snap("b", "stackhub", "system", "kind=system"),  # a manual one
                  snap("c", *SELECTED, "instance=blog")):
        fake.remove = [stray]
        clock.now = clock.now.replace(day=clock.now.day + 1)
        assert await scheduler.tick() == {"backup:@system": False}
        assert fake.forgotten == []
        assert audits[-1][:3] == ("backup.system.scheduled", "@system", False)
        assert "nothing was removed" in audits[-1][3]["error"]
    fake.remove = [snap("9", *SELECTED)]
    clock.now = clock.now.replace(day=clock.now.day + 1)
    assert await scheduler.tick() == {"backup:@system": True}
    assert fake.forgotten == ["9" * 64]
    fake.keep, fake.remove = [], [snap("8", *SELECTED)]  # would remove every one
    clock.now = clock.now.replace(day=clock.now.day + 1)
    assert await scheduler.tick() == {"backup:@system": False}
    assert fake.forgotten == ["9" * 64]

    # manual system backups are never tagged for retention
    accepted = await service.backup_system()
    await live.runner.tasks[accepted.operation.instance]
    assert "trigger=scheduled" not in fake.written[-1]


async def test_missing_and_failed_system_backups_notify(system: Any, tmp_path: Path) -> None:
    live, clock, fake, _ = system
    service = live.backups
    watch = Watcher(service=live.notify, instances=list, backups=list, domains=list,
                    root=tmp_path, usage=lambda _: Usage(100, 1, 99),
                    system_backup=service.system_status)

    def open_kinds() -> list[Kind]:
        return [n.kind for n in live.notify.listing(ADMIN).items if not n.resolved]

    watch.tick()
    assert open_kinds() == []  # no schedule, never backed up: nothing to say
    clock.set("2026-03-02T10:00:00")
    service.set_system_schedule(ScheduleRequest(at="02:30"))
    clock.set("2026-03-04T01:29:00")  # 24 h after the missed 3 March run, less a minute
    watch.tick()
    assert open_kinds() == []
    clock.set("2026-03-04T01:30:00")
    assert service.system_status().health is BackupHealth.MISSING
    watch.tick()
    assert open_kinds() == [Kind.SYSTEM_BACKUP_MISSING]

    fake.fail_backup = True
    assert await BackupScheduler(service).tick() == {"backup:@system": False}
    watch.tick()
    assert open_kinds() == [Kind.SYSTEM_BACKUP_FAILED]
    [notice] = [n for n in live.notify.listing(ADMIN).items if not n.resolved]
    assert "unreachable" in notice.text and notice.link == "/backups"

    fake.fail_backup = False
    clock.set("2026-03-05T01:30:00")
    assert await BackupScheduler(service).tick() == {"backup:@system": True}
    watch.tick()
    assert open_kinds() == []


async def test_system_schedule_api(system: Any) -> None:
    live, _clock, _fake, _ = system
    async with api_of(live) as api:
        path = "/api/backups/schedules/system"
        assert (await api.get(path)).status_code == 404
        for body in ({"keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0},
                     {"every": "yearly"}, {"at": "25:00"}, {"repository": "nowhere"}):
            answer = await api.put(path, json=body)
            assert answer.status_code in (404, 422), (body, answer.text)
        assert live.backups.store.system() is None  # nothing changed
        made = await api.put(path, json={"every": "daily", "at": "02:30", "keep_daily": 7})
        assert made.status_code == 200, made.text
        body = made.json()
        assert (body["at"], body["keep_daily"], body["status"]["instance"]) == \
            ("02:30", 7, "@system")
        assert (await api.get(path)).json()["at"] == "02:30"
        assert [s["instance"] for s in (await api.get("/api/backups/schedules")).json()] == []
        assert (await api.delete(path)).status_code == 204
        assert (await api.delete(path)).status_code == 404
    with pytest.raises(NotFound):
        live.backups.system_schedule()


async def test_retention_with_real_restic_prunes_scheduled_system_snapshots_only(
        wired: Any, tmp_path: Path) -> None:
    """restic itself selects by tags: an instance's scheduled backup and a manual system
    backup survive a keep-last-1 policy that removes the older scheduled system backup."""
    live, clock, _fake, _ = wired
    service = live.backups
    restic = service.system.restic  # the real one (the fixture replaced only the service's)
    service.restic = restic
    repo = await service.ready(service.repos.handle(None))
    (tmp_path / "blog").mkdir()
    (tmp_path / "blog" / "file").write_text("blog's data")
    await restic.backup(repo, ["blog"], cwd=tmp_path, host="stackhub",
                        tags=["stackhub", "instance=blog", "kind=scheduled"])
    manual = await service.backup_system()
    await live.runner.tasks[manual.operation.instance]
    service.set_system_schedule(ScheduleRequest(every=Every.HOURLY, at="00:05", keep_last=1,
                                                keep_daily=0, keep_weekly=0, keep_monthly=0))
    scheduler = BackupScheduler(service)
    for hour in ("11", "12"):
        clock.set(f"2026-03-02T{hour}:05:00")
        assert await scheduler.tick() == {"backup:@system": True}
    found = await restic.snapshots(repo, tags=["stackhub"])
    kinds = sorted((s.tag("instance") or "", s.tag("trigger") or "manual") for s in found)
    assert kinds == [("", "manual"), ("", "scheduled"), ("blog", "manual")]
