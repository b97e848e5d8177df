"""Backup schedules, the last backup of each instance, periodic repository checks.

Times are stored as UTC ISO strings; a schedule's `at` is read in the server's time zone.
`next_run` and `health` are pure functions of their inputs (and the clock given), so the
scheduler's tests move a fake clock instead of sleeping.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta, tzinfo

from stackhub.backup.models import (
    BackupHealth,
    BackupStatusRead,
    Every,
    ScheduleRead,
    ScheduleRequest,
)
from stackhub.errors import NotFound
from stackhub.state.db import Database

GRACE = timedelta(hours=24)  # this long past a due backup that did not succeed: missing
CHECK_EVERY = timedelta(days=30)
CHECK_RETRY = timedelta(days=1)  # after a check that failed or could not reach the repository


def iso(moment: datetime) -> str:
    """Return a UTC ISO string (seconds) of an aware datetime."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse(text: str | None) -> datetime | None:
    """Read a stored ISO time (UTC when it names no zone)."""
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def next_run(schedule: ScheduleRequest, after: datetime, tz: tzinfo) -> datetime:
    """Return the first moment strictly after `after` when `schedule` is due (aware, UTC)."""
    hour, minute = (int(x) for x in schedule.at.split(":"))
    local = after.astimezone(tz)
    if schedule.every is Every.HOURLY:
        candidate = local.replace(minute=minute, second=0, microsecond=0)
        while candidate <= local:
            candidate += timedelta(hours=1)
        return candidate.astimezone(UTC)
    day = local.date()
    if schedule.every is Every.WEEKLY:
        day += timedelta(days=(schedule.weekday - local.weekday()) % 7)
    step = 7 if schedule.every is Every.WEEKLY else 1
    while True:
        candidate = datetime.combine(day, time(hour, minute), tzinfo=tz)
        if candidate > local:
            return candidate.astimezone(UTC)
        day += timedelta(days=step)


@dataclass
class Schedule:
    """A stored schedule with its bookkeeping (`source`: the instance's own or the default).

    For the default applied to an instance, `instance` names that instance and `updated_at`
    is the later of the default's change and the instance's creation (it runs from then).
    """

    instance: str
    request: ScheduleRequest
    created_at: datetime
    updated_at: datetime
    source: str = "instance"


DEFAULT_NAME = ""  # `Schedule.instance` of the default schedule itself
SYSTEM = "@system"  # `Schedule.instance` of the system backup's schedule (no instance's name)


def effective(name: str, own: Schedule | None, default: Schedule | None,
              instance_created: datetime | None) -> Schedule | None:
    """Return the schedule that applies to an instance: its own (a paused one opts it out of
    the default), else the default from the instance's creation on, else None."""
    if own is not None:
        return own
    if default is None:
        return None
    start = max(t for t in (default.updated_at, instance_created) if t is not None)
    return Schedule(instance=name, request=default.request, created_at=default.created_at,
                    updated_at=start, source="default")


def overdue_at(schedule: Schedule, last_success: datetime | None, tz: tzinfo) -> datetime:
    """Return when a schedule's backups count as missing: 24 h after the first run that was due
    after the last good backup (or after the schedule began, if that is later).

    Daily at 03:00 with a good backup on Monday: Tuesday's 03:00 run is the first one due, so
    the alert comes on Wednesday at 03:00 unless a backup succeeded by then; a weekly schedule
    is never missing between its runs.
    """
    since = max(t for t in (last_success, schedule.updated_at) if t is not None)
    return next_run(schedule.request, since, tz) + GRACE


@dataclass
class LastBackup:
    """The last good and failed backups of an instance."""

    instance: str
    last_success_at: datetime | None = None
    last_snapshot: str | None = None
    last_repository: str | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    last_scheduled_at: datetime | None = None


def due(schedule: Schedule, last: LastBackup | None, now: datetime, tz: tzinfo) -> bool:
    """Tell whether a scheduled backup should start now (at most one catch-up after downtime)."""
    if not schedule.request.enabled:
        return False
    since = max(t for t in (schedule.updated_at, last.last_scheduled_at if last else None)
                if t is not None)
    return next_run(schedule.request, since, tz) <= now


def health(name: str, schedule: Schedule | None, last: LastBackup | None, now: datetime,
           tz: tzinfo) -> BackupStatusRead:
    """Judge an instance's backups: ok, failed, missing (overdue) or none."""
    last = last or LastBackup(instance=name)
    scheduled = schedule is not None and schedule.request.enabled
    next_at = next_run(schedule.request, max(t for t in (
        schedule.updated_at, last.last_scheduled_at) if t is not None), tz) \
        if schedule is not None and scheduled else None
    good, bad = last.last_success_at, last.last_failure_at
    if bad is not None and (good is None or bad > good):
        state, message = BackupHealth.FAILED, f"the latest backup failed: {last.last_error}"
    elif scheduled and schedule is not None:
        since = good or schedule.updated_at
        if now >= overdue_at(schedule, good, tz):
            hours = int((now - since).total_seconds() // 3600)
            state = BackupHealth.MISSING
            message = (f"no good backup for {hours} h although it is backed up "
                       f"{schedule.request.every.value}" if good else
                       f"scheduled {hours} h ago and never backed up")
        else:
            state, message = BackupHealth.OK, "backed up on schedule" if good else \
                "scheduled; the first backup has not run yet"
    elif good is not None:
        state, message = BackupHealth.OK, "backed up (no schedule)"
    else:
        state, message = BackupHealth.NONE, "never backed up and no schedule"
    return BackupStatusRead(
        instance=name, health=state, alert=state in (BackupHealth.FAILED, BackupHealth.MISSING),
        message=message, scheduled=scheduled,
        last_success_at=iso(good) if good else None, last_snapshot=last.last_snapshot,
        last_repository=last.last_repository, last_failure_at=iso(bad) if bad else None,
        last_error=last.last_error, next_run_at=iso(next_at) if next_at else None,
        schedule_source=schedule.source if schedule is not None else None)


class ScheduleStore:
    """Tables `backup_schedules`, `backup_state` and `backup_checks` (state/migrations.py)."""

    def __init__(self, db: Database) -> None:
        """Use the server's database."""
        self.db = db

    # -- schedules ------------------------------------------------------------------------------
    def _put_row(self, table: str, key: str, value: str | int, request: ScheduleRequest,
                 now: datetime) -> None:
        data = request.model_dump()
        stamp = iso(now)
        sql = (f"INSERT INTO {table} ({key}, every, at, weekday, repository, keep_last,"  # noqa: S608 (fixed table names)
               " keep_daily, keep_weekly, keep_monthly, enabled, created_at, updated_at)"
               f" VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT({key}) DO UPDATE SET"
               " every=excluded.every, at=excluded.at, weekday=excluded.weekday,"
               " repository=excluded.repository, keep_last=excluded.keep_last,"
               " keep_daily=excluded.keep_daily, keep_weekly=excluded.keep_weekly,"
               " keep_monthly=excluded.keep_monthly, enabled=excluded.enabled,"
               " updated_at=excluded.updated_at")
        with self.db.transaction() as conn:
            conn.execute(sql, (value, data["every"].value, data["at"], data["weekday"],
                               data["repository"], data["keep_last"], data["keep_daily"],
                               data["keep_weekly"], data["keep_monthly"], int(data["enabled"]),
                               stamp, stamp))

    def put(self, name: str, request: ScheduleRequest, now: datetime) -> None:
        """Create or replace an instance's schedule (the instance must exist)."""
        try:
            self._put_row("backup_schedules", "instance", name, request, now)
        except sqlite3.IntegrityError as err:
            raise NotFound(f"no instance named {name!r}") from err

    def put_default(self, request: ScheduleRequest, now: datetime) -> None:
        """Create or replace the default schedule (for instances without their own)."""
        self._put_row("backup_default_schedule", "id", 1, request, now)

    def default(self) -> Schedule | None:
        """Return the default schedule, or None."""
        rows = self.db.query("SELECT *, '' AS instance FROM backup_default_schedule")
        return replace(self._schedule(rows[0]), source="default") if rows else None

    def remove_default(self) -> bool:
        """Delete the default schedule; say whether there was one."""
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM backup_default_schedule").rowcount > 0

    def applying(self, instances: dict[str, datetime | None]) -> dict[str, Schedule]:
        """Return the schedule that applies to each instance (by name: its creation time)."""
        own = {s.instance: s for s in self.all()}
        default = self.default()
        found = {name: effective(name, own.get(name), default, created)
                 for name, created in instances.items()}
        return {name: s for name, s in found.items() if s is not None}

    def remove(self, name: str) -> bool:
        """Delete an instance's schedule; say whether there was one."""
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM backup_schedules WHERE instance = ?",
                                (name,)).rowcount > 0

    def all(self) -> list[Schedule]:
        """Return every schedule."""
        rows = self.db.query("SELECT * FROM backup_schedules ORDER BY instance")
        return [self._schedule(r) for r in rows]

    def find(self, name: str) -> Schedule | None:
        """Return an instance's schedule, or None."""
        rows = self.db.query("SELECT * FROM backup_schedules WHERE instance = ?", (name,))
        return self._schedule(rows[0]) if rows else None

    @staticmethod
    def _schedule(row: sqlite3.Row) -> Schedule:
        request = ScheduleRequest(
            every=Every(row["every"]), at=row["at"], weekday=row["weekday"] or 0,
            repository=row["repository"], keep_last=row["keep_last"],
            keep_daily=row["keep_daily"], keep_weekly=row["keep_weekly"],
            keep_monthly=row["keep_monthly"], enabled=bool(row["enabled"]))
        created, updated = parse(row["created_at"]), parse(row["updated_at"])
        assert created is not None and updated is not None  # NOT NULL columns
        return Schedule(instance=row["instance"], request=request, created_at=created,
                        updated_at=updated)

    def read(self, schedule: Schedule, last: LastBackup | None, tz: tzinfo) -> ScheduleRead:
        """Return the API view of a schedule."""
        since = max(t for t in (schedule.updated_at, last.last_scheduled_at if last else None)
                    if t is not None)
        next_at = next_run(schedule.request, since, tz) if schedule.request.enabled else None
        return ScheduleRead(**schedule.request.model_dump(), instance=schedule.instance,
                            source=schedule.source,
                            next_run_at=iso(next_at) if next_at else None,
                            created_at=iso(schedule.created_at),
                            updated_at=iso(schedule.updated_at))

    # -- the last backups -------------------------------------------------------------------------
    def last(self, name: str) -> LastBackup | None:
        """Return what is known of an instance's last backups."""
        rows = self.db.query("SELECT * FROM backup_state WHERE instance = ?", (name,))
        return self._last(rows[0]) if rows else None

    def lasts(self) -> dict[str, LastBackup]:
        """Return the last backups of every instance that has any."""
        return {r["instance"]: self._last(r) for r in self.db.query("SELECT * FROM backup_state")}

    @staticmethod
    def _last(row: sqlite3.Row) -> LastBackup:
        return LastBackup(instance=row["instance"], last_success_at=parse(row["last_success_at"]),
                          last_snapshot=row["last_snapshot"],
                          last_repository=row["last_repository"],
                          last_failure_at=parse(row["last_failure_at"]),
                          last_error=row["last_error"],
                          last_scheduled_at=parse(row["last_scheduled_at"]))

    def _upsert(self, name: str, column_values: dict[str, str | None]) -> None:
        columns = ", ".join(column_values)
        marks = ", ".join("?" * len(column_values))
        updates = ", ".join(f"{c} = excluded.{c}" for c in column_values)
        sql = (f"INSERT INTO backup_state (instance, {columns}) VALUES (?, {marks}) "  # noqa: S608 (fixed column names)
               f"ON CONFLICT(instance) DO UPDATE SET {updates}")
        with self.db.transaction() as conn:
            exists = conn.execute("SELECT 1 FROM instances WHERE name = ?", (name,)).fetchone()
            if exists:
                conn.execute(sql, (name, *column_values.values()))

    def succeeded(self, name: str, snapshot: str, repository: str, now: datetime) -> None:
        """Record a good backup."""
        self._upsert(name, {"last_success_at": iso(now), "last_snapshot": snapshot,
                            "last_repository": repository})

    def failed(self, name: str, error: str, now: datetime) -> None:
        """Record a failed backup."""
        self._upsert(name, {"last_failure_at": iso(now), "last_error": error[:2000]})

    def scheduled(self, name: str, now: datetime) -> None:
        """Record that a scheduled run started (it is not due again before its next time)."""
        self._upsert(name, {"last_scheduled_at": iso(now)})

    # -- the system backup's schedule and last runs -------------------------------------------
    def put_system(self, request: ScheduleRequest, now: datetime) -> None:
        """Create or replace the system backup's schedule and retention."""
        self._put_row("backup_system_schedule", "id", 1, request, now)

    def system(self) -> Schedule | None:
        """Return the system backup's schedule, or None."""
        rows = self.db.query(f"SELECT *, '{SYSTEM}' AS instance FROM backup_system_schedule")  # noqa: S608 (a constant)
        return replace(self._schedule(rows[0]), source="system") if rows else None

    def remove_system(self) -> bool:
        """Delete the system backup's schedule; say whether there was one."""
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM backup_system_schedule").rowcount > 0

    def system_last(self) -> LastBackup | None:
        """Return what is known of the last system backups."""
        rows = self.db.query(f"SELECT *, '{SYSTEM}' AS instance FROM backup_system_state")  # noqa: S608 (a constant)
        return self._last(rows[0]) if rows else None

    def _system_upsert(self, column_values: dict[str, str | None]) -> None:
        columns = ", ".join(column_values)
        marks = ", ".join("?" * len(column_values))
        updates = ", ".join(f"{c} = excluded.{c}" for c in column_values)
        with self.db.transaction() as conn:
            conn.execute(f"INSERT INTO backup_system_state (id, {columns}) VALUES (1, {marks}) "  # noqa: S608 (fixed column names)
                         f"ON CONFLICT(id) DO UPDATE SET {updates}", tuple(column_values.values()))

    def system_succeeded(self, snapshot: str, repository: str, now: datetime) -> None:
        """Record a good system backup."""
        self._system_upsert({"last_success_at": iso(now), "last_snapshot": snapshot,
                             "last_repository": repository})

    def system_failed(self, error: str, now: datetime) -> None:
        """Record a failed system backup."""
        self._system_upsert({"last_failure_at": iso(now), "last_error": error[:2000]})

    def system_scheduled(self, now: datetime) -> None:
        """Record that a scheduled system backup started."""
        self._system_upsert({"last_scheduled_at": iso(now)})

    # -- repository checks ------------------------------------------------------------------------
    def checked(self, repository: str, ok: bool, output: str, now: datetime) -> None:
        """Record a repository check."""
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO backup_checks (repository, checked_at, ok, output) VALUES"
                         " (?,?,?,?) ON CONFLICT(repository) DO UPDATE SET checked_at ="
                         " excluded.checked_at, ok = excluded.ok, output = excluded.output",
                         (repository, iso(now), int(ok), output[-4000:]))

    def check_error(self, repository: str) -> str | None:
        """Return the gist of a repository's last check when it failed (its first error line,
        else its last line), None when it was sound or never ran."""
        rows = self.db.query("SELECT ok, output FROM backup_checks WHERE repository = ?",
                             (repository,))
        if not rows or rows[0]["ok"]:
            return None
        lines = [x.strip() for x in str(rows[0]["output"]).splitlines() if x.strip()]
        errors = [x for x in lines if "error" in x.lower() or "fatal" in x.lower()]
        return (errors or lines or ["the check failed"])[0 if errors else -1][:500]

    def last_check(self, repository: str) -> tuple[datetime, bool] | None:
        """Return when a repository was last checked and whether it was sound."""
        rows = self.db.query("SELECT checked_at, ok FROM backup_checks WHERE repository = ?",
                             (repository,))
        if not rows:
            return None
        stamp = parse(rows[0]["checked_at"])
        return (stamp, bool(rows[0]["ok"])) if stamp else None
