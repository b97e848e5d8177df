"""The default schedule (which schedule applies to an instance, the scheduler running it like
an instance's own) and when a scheduled instance's backups count as missing, on a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stackhub.adapters.restic import ForgetPlan, Repository, Snapshot
from stackhub.backup.models import BackupHealth, Every, ScheduleRequest
from stackhub.backup.scheduler import BackupScheduler
from stackhub.backup.schedules import Schedule, effective, health, overdue_at
from stackhub.errors import NotFound
from stackhub.operations.runner import Run
from stackhub.services import Services
from tests.unit.backup.test_schedules import BERLIN, Recorder, api_of, wired
from tests.unit.support import create_instance, instance_record

__all__ = ["wired"]  # the fixture, shared with test_schedules.py

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def at(text: str) -> datetime:
    """A UTC moment from 'YYYY-MM-DDTHH:MM'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def stored(request: ScheduleRequest, *, since: datetime = T0, name: str = "blog",
           source: str = "instance") -> Schedule:
    return Schedule(instance=name, request=request, created_at=since, updated_at=since,
                    source=source)


class Many(Recorder):
    """The Recorder for several instances: retention plans by instance, one backup at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[list[str]] = []
        self.running = 0
        self.most = 0

    async def backup(self, run: Run, repo: Repository, *, kind: str = "manual",
                     stop: bool = True, restart: bool = True,
                     done: Callable[[str], None] | None = None) -> Any:
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(0.01)  # a backup that takes a moment: others would overlap here
        self.running -= 1
        return await super().backup(run, repo, kind=kind, stop=stop, restart=restart,
                                    done=done)

    async def forget_plan(self, repo: Repository, *, tags: list[str], host: str,
                          keep: dict[str, int]) -> ForgetPlan:
        self.tags.append(list(tags))
        self.plans.append(dict(keep))
        name = tags[1].removeprefix("instance=")
        return ForgetPlan(keep=[Snapshot(id="f" * 64, time="2026-01-01T00:00:00Z",
                                         tags=["stackhub", f"instance={name}",
                                               "kind=scheduled"])], remove=[])


def add_instance(live: Services, name: str, created: datetime) -> None:
    """An instance (its install journaled and finished) created at `created`."""
    from stackhub.operations.models import OperationState

    op = create_instance(live.records, instance_record(name))
    live.runner.journal.finish(op.id, OperationState.SUCCEEDED, instance_status="running")
    created_at(live, name, created)


def created_at(live: Services, name: str, moment: datetime) -> None:
    with live.db.transaction() as conn:
        conn.execute("UPDATE instances SET created_at = ? WHERE name = ?",
                     (moment.isoformat().replace("+00:00", "Z"), name))


def test_which_schedule_applies() -> None:
    own = stored(ScheduleRequest(at="01:00"))
    paused = stored(ScheduleRequest(enabled=False))
    default = stored(ScheduleRequest(at="03:00", keep_daily=3), since=at("2026-03-01T10:00"),
                     name="", source="default")
    assert effective("blog", own, default, T0) is own
    assert effective("blog", paused, default, T0) is paused  # a paused own one opts out
    assert effective("blog", None, None, T0) is None
    older = effective("blog", None, default, T0)
    assert older is not None and older.source == "default" and older.instance == "blog"
    assert older.request.keep_daily == 3
    assert older.updated_at == at("2026-03-01T10:00")  # runs from the default's setting
    newer = effective("shop", None, default, at("2026-03-05T12:00"))
    assert newer is not None and newer.updated_at == at("2026-03-05T12:00")  # from install


def test_missing_24_h_after_the_first_due_run_that_did_not_succeed() -> None:
    daily = stored(ScheduleRequest(every=Every.DAILY, at="03:00"))
    good = at("2026-03-02T02:05")  # Monday's run (03:05 in Berlin, +01:00)
    assert overdue_at(daily, good, BERLIN) == at("2026-03-04T02:00")  # Wednesday 03:00
    assert health("blog", daily, _last(good), at("2026-03-04T01:59"), BERLIN).health == \
        BackupHealth.OK  # Tuesday's run was missed, and 24 h have not passed yet
    late = health("blog", daily, _last(good), at("2026-03-04T02:00"), BERLIN)
    assert (late.health, late.alert) == (BackupHealth.MISSING, True)
    assert "47 h" in late.message

    weekly = stored(ScheduleRequest(every=Every.WEEKLY, at="04:30", weekday=6))
    sunday = at("2026-03-01T03:40")  # Sunday's run, done at 04:40 local
    for moment in ("2026-03-07T23:00", "2026-03-08T03:30", "2026-03-09T03:29"):
        assert health("blog", weekly, _last(sunday), at(moment), BERLIN).health == \
            BackupHealth.OK, moment  # between runs, and within 24 h of the missed one
    assert health("blog", weekly, _last(sunday), at("2026-03-09T03:30"), BERLIN).health == \
        BackupHealth.MISSING

    hourly = stored(ScheduleRequest(every=Every.HOURLY, at="00:15"))
    good = at("2026-03-02T10:20")
    assert overdue_at(hourly, good, BERLIN) == at("2026-03-03T11:15")

    # never backed up: counted from the schedule's start; a paused one never alerts
    fresh = stored(ScheduleRequest(at="03:00"), since=at("2026-03-02T12:00"))
    assert health("blog", fresh, None, at("2026-03-04T01:59"), BERLIN).health == BackupHealth.OK
    assert health("blog", fresh, None, at("2026-03-04T02:00"), BERLIN).health == \
        BackupHealth.MISSING
    off = stored(ScheduleRequest(at="03:00", enabled=False))
    assert health("blog", off, None, at("2026-04-01T00:00"), BERLIN).health == BackupHealth.NONE
    # a good backup older than the schedule does not make a new schedule overdue at once
    assert health("blog", fresh, _last(at("2026-01-01T00:00")), at("2026-03-03T09:00"),
                  BERLIN).health == BackupHealth.OK


def _last(good: datetime) -> Any:
    from stackhub.backup.schedules import LastBackup

    return LastBackup(instance="blog", last_success_at=good)


async def test_default_schedule_runs_like_an_own_one_for_present_and_future_instances(
        wired: Any) -> None:
    live, clock, _fake, audits = wired
    fake = Many()
    service = live.backups
    service.flows.backup = fake.backup
    service.restic = fake
    created_at(live, "blog", at("2026-02-01T00:00"))
    add_instance(live, "wiki", at("2026-02-01T00:00"))
    add_instance(live, "quiet", at("2026-02-01T00:00"))
    service.set_schedule("quiet", ScheduleRequest(enabled=False))  # opted out
    read = service.set_default_schedule(ScheduleRequest(at="03:00", keep_daily=3,
                                                        keep_weekly=0, keep_monthly=0))
    assert read.instances == ["blog", "wiki"] and read.next_run_at == "2026-03-03T02:00:00Z"
    assert {s.instance: s.source for s in service.schedules()} == {
        "blog": "default", "wiki": "default", "quiet": "instance"}
    assert {s.instance: s.schedule_source for s in service.status()} == {
        "blog": "default", "wiki": "default", "quiet": "instance"}

    scheduler = BackupScheduler(service)
    clock.set("2026-03-03T01:59:00")
    assert await scheduler.tick() == {}
    clock.set("2026-03-03T02:00:00")
    assert await scheduler.tick() == {"backup:blog": True, "backup:wiki": True}
    assert fake.backups == [("blog", "scheduled"), ("wiki", "scheduled")]
    assert fake.most == 1  # one at a time
    assert fake.tags == [["stackhub", f"instance={n}", "kind=scheduled"]
                         for n in ("blog", "wiki")]  # each pruned on its own
    assert fake.plans == [{"last": 0, "daily": 3, "weekly": 0, "monthly": 0}] * 2
    assert [a[3]["schedule"] for a in audits] == ["default", "default"]
    assert await scheduler.tick() == {}

    # an instance installed later follows the default from its install on
    clock.set("2026-03-03T12:00:00")
    add_instance(live, "shop", at("2026-03-03T12:00"))
    assert await scheduler.tick() == {}
    assert "shop" in service.default_schedule().instances
    clock.set("2026-03-04T02:00:00")
    assert await scheduler.tick() == {"backup:blog": True, "backup:shop": True,
                                      "backup:wiki": True}
    assert ("quiet", "scheduled") not in fake.backups

    # its own schedule wins; removing it falls back to the default; no default: nothing
    service.set_schedule("shop", ScheduleRequest(at="05:00"))
    clock.set("2026-03-04T03:59:00")
    assert await scheduler.tick() == {}
    clock.set("2026-03-04T04:00:00")  # 05:00 in Berlin
    assert await scheduler.tick() == {"backup:shop": True}
    clock.set("2026-03-05T02:00:00")
    assert set(await scheduler.tick()) == {"backup:blog", "backup:wiki"}
    service.remove_schedule("shop")
    service.remove_default_schedule()
    clock.set("2026-03-06T02:00:00")
    assert await scheduler.tick() == {}
    assert service.schedules()[0].instance == "quiet" and len(service.schedules()) == 1
    with pytest.raises(NotFound):
        service.default_schedule()


async def test_default_schedule_api(wired: Any) -> None:
    live, _clock, _fake, _ = wired
    async with api_of(live) as api:
        assert (await api.get("/api/backups/schedules/default")).status_code == 404
        for body in ({"keep_daily": 0, "keep_weekly": 0, "keep_monthly": 0},
                     {"every": "yearly"}, {"at": "3:00"}, {"repository": "nowhere"}):
            answer = await api.put("/api/backups/schedules/default", json=body)
            assert answer.status_code in (404, 422), (body, answer.text)
        assert live.backups.store.default() is None  # nothing changed
        made = await api.put("/api/backups/schedules/default",
                             json={"every": "weekly", "weekday": 6, "at": "04:30",
                                   "keep_weekly": 8})
        assert made.status_code == 200, made.text
        body = made.json()
        assert (body["every"], body["keep_weekly"], body["instances"]) == ("weekly", 8, ["blog"])
        listed = (await api.get("/api/backups/schedules")).json()
        assert [(s["instance"], s["source"]) for s in listed] == [("blog", "default")]
        assert (await api.delete("/api/backups/schedules/default")).status_code == 204
        assert (await api.delete("/api/backups/schedules/default")).status_code == 404
        assert (await api.get("/api/backups/schedules")).json() == []


def test_status_missing_follows_the_default(wired: Any) -> None:
    live, clock, _fake, _ = wired
    service = live.backups
    created_at(live, "blog", at("2026-02-01T00:00"))
    clock.set("2026-03-02T10:00:00")
    service.set_default_schedule(ScheduleRequest(at="03:00"))
    clock.now += timedelta(days=1)
    assert service.status("blog")[0].health == BackupHealth.OK
    clock.set("2026-03-04T02:00:00")  # the 3 March run never happened
    status = service.status("blog")[0]
    assert (status.health, status.schedule_source) == (BackupHealth.MISSING, "default")
