"""Schedules, retention and backup health, driven by a fake clock (nothing sleeps for hours).

The scheduler, service, store and runner are the real ones; only the backup's own steps are
replaced (they need an engine and restic: tests/integration/test_backup.py runs them), and
the retention runs real restic on a local repository.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import ValidationError

from stackhub.adapters.restic import ForgetPlan, Repository, Snapshot
from stackhub.api.app import create_app
from stackhub.backup.models import Every, Retention, ScheduleRequest
from stackhub.backup.scheduler import BackupScheduler
from stackhub.backup.schedules import next_run
from stackhub.errors import Conflict, EngineError, Invalid, NotFound
from stackhub.operations.models import InstanceStatus
from stackhub.operations.runner import Run
from stackhub.services import Services
from tests.unit.support import create_instance, instance_record

BERLIN = ZoneInfo("Europe/Berlin")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, text: str) -> None:
        self.now = datetime.fromisoformat(text).replace(tzinfo=UTC)


class Recorder:
    """Stands in for the backup's steps and restic's retention; records what was asked."""

    def __init__(self) -> None:
        self.backups: list[tuple[str, str]] = []
        self.fail: str | None = None
        self.plans: list[dict[str, int]] = []
        self.checks: list[str | None] = []
        self.forgotten: list[str] = []
        self.remove: list[Snapshot] = []
        self.keep: list[Snapshot] = [Snapshot(id="f" * 64, time="2026-01-01T00:00:00Z",
                                              tags=["stackhub", "instance=blog",
                                                    "kind=scheduled"])]

    async def backup(self, run: Run, repo: Repository, *, kind: str = "manual",
                     stop: bool = True, restart: bool = True,
                     done: Callable[[str], None] | None = None) -> InstanceStatus | None:
        self.backups.append((run.op.instance, kind))
        if self.fail:
            raise EngineError(self.fail)
        if done is not None:
            done("a" * 64)
        return None

    async def forget_plan(self, repo: Repository, *, tags: list[str], host: str,
                          keep: dict[str, int]) -> ForgetPlan:
        assert tags == ["stackhub", "instance=blog", "kind=scheduled"] and host == "stackhub"
        self.plans.append(dict(keep))
        return ForgetPlan(keep=self.keep, remove=self.remove)

    async def forget(self, repo: Repository, snapshot_ids: list[str]) -> None:
        self.forgotten += snapshot_ids

    async def check(self, repo: Repository, *, read_data_subset: str | None = None) -> str:
        self.checks.append(read_data_subset)
        return "no errors were found"

    async def init(self, repo: Repository) -> None:
        return None

    async def add_light_key(self, repo: Repository) -> str:
        return "c" * 64


@pytest.fixture
def wired(live: Services) -> tuple[Services, Clock, Recorder, list[tuple[Any, ...]]]:
    clock = Clock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    fake = Recorder()
    audits: list[tuple[Any, ...]] = []
    service = live.backups
    service.clock, service.tz = clock, BERLIN
    service.audit = lambda *args: audits.append(args)
    service.flows.backup = fake.backup  # type: ignore[method-assign]
    service.restic = fake  # type: ignore[assignment]
    create_instance(live.records, instance_record("blog"))
    live.runner.journal.finish(live.runner.journal.page(
        _all(), limit=1).items[0].id, _succeeded(), instance_status="running")
    return live, clock, fake, audits


def api_of(live: Services) -> httpx.AsyncClient:
    """An HTTP client of the API in process (no lifespan: the test's services, loop, clock)."""
    app = create_app(live.paths, services=live, public_host="host.test")
    app.state.services = live
    token = live.paths.admin_token.read_text().strip()
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost",
                             headers={"Authorization": f"Bearer {token}"})


def _all() -> Any:
    from stackhub.operations.journal import OperationFilter

    return OperationFilter()


def _succeeded() -> Any:
    from stackhub.operations.models import OperationState

    return OperationState.SUCCEEDED


def test_next_run_daily_hourly_weekly_and_across_summer_time() -> None:
    daily = ScheduleRequest(every=Every.DAILY, at="03:00")
    # 29 March 2026: Berlin moves from +01:00 to +02:00 at 02:00 local
    assert next_run(daily, datetime(2026, 3, 28, 12, 0, tzinfo=UTC), BERLIN) == \
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert next_run(daily, datetime(2026, 3, 29, 1, 0, tzinfo=UTC), BERLIN) == \
        datetime(2026, 3, 30, 1, 0, tzinfo=UTC)
    assert next_run(daily, datetime(2026, 3, 27, 12, 0, tzinfo=UTC), BERLIN) == \
        datetime(2026, 3, 28, 2, 0, tzinfo=UTC)
    hourly = ScheduleRequest(every=Every.HOURLY, at="00:15")
    assert next_run(hourly, datetime(2026, 3, 2, 10, 15, tzinfo=UTC), BERLIN) == \
        datetime(2026, 3, 2, 11, 15, tzinfo=UTC)
    weekly = ScheduleRequest(every=Every.WEEKLY, at="04:30", weekday=6)  # Sundays
    assert next_run(weekly, datetime(2026, 3, 2, 10, 0, tzinfo=UTC), BERLIN) == \
        datetime(2026, 3, 8, 3, 30, tzinfo=UTC)


def test_a_retention_that_keeps_nothing_or_has_a_typo_is_refused() -> None:
    with pytest.raises(ValidationError, match="keeps nothing"):
        Retention(keep_last=0, keep_daily=0, keep_weekly=0, keep_monthly=0)
    with pytest.raises(ValidationError, match="keep_tag"):
        ScheduleRequest.model_validate({"keep_tag": "important"})
    with pytest.raises(ValidationError):
        ScheduleRequest.model_validate({"keep_daily": -1})
    with pytest.raises(ValidationError):
        ScheduleRequest.model_validate({"at": "3:00"})


async def test_daily_schedule_runs_once_at_its_time_then_prunes(wired: Any) -> None:
    live, clock, fake, audits = wired
    service = live.backups
    scheduler = BackupScheduler(service)
    read = service.set_schedule("blog", ScheduleRequest(every=Every.DAILY, at="03:00",
                                                        keep_daily=7, keep_weekly=4,
                                                        keep_monthly=0))
    assert read.next_run_at == "2026-03-03T02:00:00Z"  # 03:00 in Berlin (+01:00)
    assert service.status("blog")[0].health == "ok" and not service.status("blog")[0].alert

    clock.set("2026-03-03T01:59:00")
    assert await scheduler.tick() == {} and fake.backups == []
    clock.set("2026-03-03T02:00:00")
    assert await scheduler.tick() == {"backup:blog": True}
    assert fake.backups == [("blog", "scheduled")]
    assert fake.plans == [{"last": 0, "daily": 7, "weekly": 4, "monthly": 0}]
    status = service.status("blog")[0]
    assert (status.health, status.last_success_at, status.last_snapshot) == (
        "ok", "2026-03-03T02:00:00Z", "a" * 64)
    assert status.next_run_at == "2026-03-04T02:00:00Z"
    clock.set("2026-03-03T02:30:00")
    assert await scheduler.tick() == {}
    clock.set("2026-03-04T02:00:30")
    assert await scheduler.tick() == {"backup:blog": True}
    assert len(fake.backups) == 2
    assert [a[:3] for a in audits] == [("backup.scheduled", "blog", True)] * 2


async def test_failed_and_missing_backups_raise_alerts(wired: Any) -> None:
    live, clock, fake, audits = wired
    service = live.backups
    scheduler = BackupScheduler(service)
    service.set_schedule("blog", ScheduleRequest(at="03:00"))
    fake.fail = "the engine refused"
    clock.set("2026-03-03T02:00:00")
    assert await scheduler.tick() == {"backup:blog": False}
    status = service.status("blog")[0]
    assert status.health == "failed" and status.alert and "engine refused" in status.message
    assert audits[-1][:3] == ("backup.scheduled", "blog", False)
    assert fake.plans == []  # no retention after a failed backup

    # the server was down for two days: the status says so, and one catch-up run follows
    fake.fail = None
    clock.set("2026-03-05T09:00:00")
    assert service.status("blog")[0].health == "failed"
    service.store.succeeded("blog", "b" * 64, "local", datetime(2026, 3, 3, 3, 0, tzinfo=UTC))
    status = service.status("blog")[0]
    assert status.health == "missing" and status.alert and "54 h" in status.message
    assert await scheduler.tick() == {"backup:blog": True}
    assert await scheduler.tick() == {}
    assert service.status("blog")[0].health == "ok"

    # answered over the API too (what the CLI and the console read)
    async with api_of(live) as api:
        answer = await api.get("/api/backups/status", params={"instance": "blog"})
    assert answer.status_code == 200 and answer.json()[0]["health"] == "ok"


async def test_a_busy_instance_is_a_failed_scheduled_backup(wired: Any) -> None:
    live, clock, fake, _ = wired
    service = live.backups
    service.set_schedule("blog", ScheduleRequest(at="03:00"))
    live.runner._held.add("blog")  # another operation holds the instance
    clock.set("2026-03-03T02:00:00")
    assert await BackupScheduler(service).tick() == {"backup:blog": False}
    assert "busy" in (service.status("blog")[0].last_error or "")
    assert fake.backups == []


async def test_retention_never_removes_everything_nor_other_backups(wired: Any) -> None:
    live, _clock, fake, _ = wired
    service = live.backups
    other = Snapshot(id="c" * 64, time="2026-01-01T00:00:00Z",
                     tags=["stackhub", "instance=other", "kind=scheduled"])
    fake.remove = [other]
    with pytest.raises(Conflict, match="not a scheduled backup of 'blog'"):
        await service.prune("blog", Retention(keep_daily=1))
    manual = Snapshot(id="d" * 64, time="2026-01-01T00:00:00Z",
                      tags=["stackhub", "instance=blog", "kind=manual"])
    fake.remove = [manual]
    with pytest.raises(Conflict):
        await service.prune("blog", Retention(keep_daily=1))
    mine = Snapshot(id="e" * 64, time="2026-01-01T00:00:00Z",
                    tags=["stackhub", "instance=blog", "kind=scheduled"])
    fake.remove, fake.keep = [mine], []
    with pytest.raises(Conflict, match="every scheduled backup"):
        await service.prune("blog", Retention(keep_daily=1))
    assert fake.forgotten == []
    fake.keep = [Snapshot(id="f" * 64, time="2026-01-02T00:00:00Z", tags=mine.tags)]
    dry = await service.prune("blog", Retention(keep_daily=1), dry_run=True)
    assert dry.removed == ["e" * 64] and fake.forgotten == []
    done = await service.prune("blog", Retention(keep_daily=1))
    assert done.removed == ["e" * 64] and fake.forgotten == ["e" * 64]


async def test_repositories_are_checked_every_30_days(wired: Any) -> None:
    live, clock, fake, _ = wired
    service = live.backups
    created = datetime.fromisoformat(service.repos.get("local").created_at.replace("Z", "+00:00"))
    clock.now = created + timedelta(days=29)
    assert await BackupScheduler(service).tick() == {}
    clock.now = created + timedelta(days=30, minutes=1)
    assert await BackupScheduler(service).tick() == {"check:local": True}
    assert fake.checks == ["5%"]
    clock.now += timedelta(days=29)
    assert await BackupScheduler(service).tick() == {}
    clock.now += timedelta(days=1, minutes=1)
    assert await BackupScheduler(service).tick() == {"check:local": True}
    assert [c.repository for c in service.checks()] == ["local"]


async def test_schedule_api_validates_and_changes_nothing_on_bad_input(wired: Any) -> None:
    live, _clock, _fake, _ = wired
    async with api_of(live) as api:
        await _bad_schedules(live, api)


async def _bad_schedules(live: Services, api: httpx.AsyncClient) -> None:
    for body in ({"keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0},
                 {"keep_tag": "x"}, {"every": "yearly"}, {"at": "25:00"},
                 {"repository": "nowhere"}):
        answer = await api.put("/api/backups/instances/blog/schedule", json=body)
        assert answer.status_code in (404, 422), (body, answer.text)
    assert live.backups.schedules() == []
    missing = await api.put("/api/backups/instances/ghost/schedule", json={})
    assert missing.status_code == 404
    made = await api.put("/api/backups/instances/blog/schedule",
                         json={"every": "weekly", "weekday": 6, "at": "04:30"})
    assert made.status_code == 200 and made.json()["keep_daily"] == 7
    assert (await api.delete("/api/backups/instances/blog/schedule")).status_code == 204
    with pytest.raises(NotFound):
        live.backups.schedule("blog")


async def test_real_restic_retention_keeps_other_instances_and_manual_backups(
        live: Services, tmp_path: Path) -> None:
    service = live.backups
    repo = await service.ready(service.repos.handle(None))
    data = tmp_path / "d"
    data.mkdir()
    (data / "f").write_text("x")

    def snap(instance: str, kind: str, day: int) -> None:
        subprocess.run(["restic", *repo.args(), "backup", "-q", "--host", "stackhub",
                        "--time", f"2026-03-{day:02d} 03:00:00", "--tag",
                        f"stackhub,instance={instance},kind={kind}", str(data)],
                       check=True, capture_output=True)

    for day in range(1, 8):
        snap("blog", "scheduled", day)
    snap("blog", "manual", 2)
    snap("blog", "pre-update", 3)
    snap("other", "scheduled", 1)
    dry = await service.prune("blog", Retention(keep_last=0, keep_daily=3, keep_weekly=0,
                                                keep_monthly=0), dry_run=True)
    assert (len(dry.kept), len(dry.removed)) == (3, 4)
    assert len(await service.restic.snapshots(repo)) == 10  # a dry run removes nothing
    await service.prune("blog", Retention(keep_last=0, keep_daily=3, keep_weekly=0,
                                          keep_monthly=0))
    left = await service.restic.snapshots(repo)
    kinds = sorted(f"{s.tag('instance')}:{s.tag('kind')}" for s in left)
    assert kinds == ["blog:manual", "blog:pre-update", "blog:scheduled", "blog:scheduled",
                     "blog:scheduled", "other:scheduled"]
    with pytest.raises(Invalid, match="keeps nothing"):
        await service.restic.forget_plan(repo, tags=["stackhub"], host="stackhub",
                                         keep={"daily": 0})
    with pytest.raises(Invalid):
        await service.restic.forget_plan(repo, tags=["stackhub"], host="stackhub",
                                         keep={"tag": 1})
