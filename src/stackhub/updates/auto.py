"""Automatic updates per instance: off by default, inside a weekly or daily window.

A window is days plus a start time and an optional end in the server's time zone
(`sun 04:00`, `daily 03:00-05:00`, `sat,sun 02:30-04:00`; without an end it lasts 2 hours;
an end before the start runs past midnight). `AutoUpdater.tick()` starts, one after another,
the `auto-update` operation of every enabled instance whose window is open and that has not
been tried in this opening: it checks (registry HEAD requests, the store), then applies the
update through the safe flow of updates/flows.py (pull, stop, snapshot, apply, stability
window, automatic rollback) inside the same operation, so every result is in the activity
view. Only new digests by default; new versions with kind `version`; a database image
changing its major version never. Results are also published on the bus (topic
`auto-update`) for notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

from stackhub import faults
from stackhub.apps.models import Accepted, InstanceStatus
from stackhub.errors import Conflict, Invalid, StackHubError, StorageFull
from stackhub.events import Event, EventBus
from stackhub.operations.runner import OperationKind, Outcome, Run, register
from stackhub.state.db import Database, now
from stackhub.updates.models import AutoUpdateRead, AutoUpdateRequest, UpdateRequest
from stackhub.updates.service import UpdatesService

log = logging.getLogger(__name__)
AUTO_UPDATE = register(OperationKind("auto-update", "the automatic update", None, None, None,
                                     hint="it is tried again in the next window"))
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_WINDOW = "sun 04:00"
DEFAULT_LENGTH = 120
KINDS = ("digest", "version")
SKIP = {InstanceStatus.STOPPED.value, InstanceStatus.FAILED.value,
        InstanceStatus.INTERRUPTED.value, InstanceStatus.MISSING.value}
_SYNTAX = re.compile(r"^\s*([a-z,]+)\s+(\d{1,2}):(\d{2})(?:\s*-\s*(\d{1,2}):(\d{2}))?\s*$")


@dataclass(frozen=True)
class Window:
    """When automatic updates may start: weekdays (0 = Monday), a start and a length."""

    days: frozenset[int]
    start: int  # minutes after midnight
    length: int  # minutes

    def text(self) -> str:
        """The canonical text of the window (`sun 04:00-06:00`)."""
        days = "daily" if len(self.days) == 7 else ",".join(DAYS[d] for d in sorted(self.days))
        end = (self.start + self.length) % 1440
        return f"{days} {self.start // 60:02d}:{self.start % 60:02d}-{end // 60:02d}:{end % 60:02d}"

    def opened(self, moment: datetime) -> datetime | None:
        """The start of the window's opening that contains `moment` (aware), or None."""
        local = moment.astimezone(moment.tzinfo)
        for back in (0, 1):  # an opening may have begun the day before (past midnight)
            day = local.date() - timedelta(days=back)
            if day.weekday() not in self.days:
                continue
            begin = datetime.combine(day, time(self.start // 60, self.start % 60),
                                     tzinfo=local.tzinfo)
            if begin <= local < begin + timedelta(minutes=self.length):
                return begin
        return None

    def next_opening(self, moment: datetime) -> datetime:
        """The next start of the window after `moment` (aware)."""
        local = moment.astimezone(moment.tzinfo)
        for ahead in range(8):
            day = local.date() + timedelta(days=ahead)
            begin = datetime.combine(day, time(self.start // 60, self.start % 60),
                                     tzinfo=local.tzinfo)
            if day.weekday() in self.days and begin > local:
                return begin
        raise AssertionError("a window has at least one day")  # pragma: no cover


def parse_window(text: str) -> Window:
    """Read `DAYS HH:MM[-HH:MM]` (Invalid with the expected syntax otherwise)."""
    help_ = ("write the window as days and a time, e.g. 'sun 04:00', 'daily 03:00-05:00' or "
             "'sat,sun 02:30-04:00' (days: daily, mon, tue, wed, thu, fri, sat, sun)")
    match = _SYNTAX.match(text.lower())
    if match is None:
        raise Invalid(f"cannot read the window {text!r}: {help_}")
    names, hour, minute, end_hour, end_minute = match.groups()
    days: set[int] = set()
    for item in names.split(","):
        if item in ("daily", "everyday"):
            days.update(range(7))
            continue
        day = _day(item)
        if day is None:
            raise Invalid(f"unknown day {item!r} in the window {text!r}: {help_}")
        days.add(day)
    start = _minutes(hour, minute, text)
    if end_hour is None:
        length = DEFAULT_LENGTH
    else:
        length = (_minutes(end_hour, end_minute, text) - start) % 1440
        if length == 0:
            raise Invalid(f"the window {text!r} ends when it starts; give a later end (e.g. "
                          "'sun 04:00-06:00')")
    return Window(days=frozenset(days), start=start, length=length)


def _day(item: str) -> int | None:
    """A weekday from `sun`, `sund`, `sunday` or `sundays`."""
    word = item[:-1] if item.endswith("s") and item[:-1] in FULL_DAYS else item
    if len(word) < 3:
        return None
    return next((i for i, full in enumerate(FULL_DAYS) if full.startswith(word)), None)


def _minutes(hour: str, minute: str, text: str) -> int:
    h, m = int(hour), int(minute)
    if h > 23 or m > 59:
        raise Invalid(f"{hour}:{minute} in the window {text!r} is not a time of day (00:00 "
                      "to 23:59, e.g. 'sun 04:00')")
    return h * 60 + m


@dataclass(frozen=True)
class AutoSetting:
    """One instance's row of `auto_updates`."""

    instance: str
    enabled: bool
    window: Window
    kind: str
    last_at: datetime | None


class AutoUpdater:
    """Settings, the on-demand run and the scheduler of automatic updates."""

    def __init__(self, *, updates: UpdatesService, db: Database, bus: EventBus,
                 tz: tzinfo | None = None, clock: Callable[[], datetime] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Keep the collaborators; `clock` (aware UTC now), `tz` and `sleep` are injectable."""
        self.updates = updates
        self.db = db
        self.bus = bus
        self.tz: tzinfo = tz or UTC
        self.clock = clock or (lambda: datetime.now(UTC))
        self.sleep = sleep
        updates.apps.runner.after_crash(AUTO_UPDATE.name, updates.flows.after_update_crash)

    # -- settings -------------------------------------------------------------------------------
    def setting(self, name: str) -> AutoSetting:
        """The instance's setting (off, `sun 04:00`, digest when never set)."""
        self.updates.apps.records.get(name)  # NotFound for an unknown instance
        rows = self.db.query("SELECT * FROM auto_updates WHERE instance = ?", (name,))
        if not rows:
            return AutoSetting(name, False, parse_window(DEFAULT_WINDOW), "digest", None)
        row = rows[0]
        last = datetime.fromisoformat(row["last_at"]) if row["last_at"] else None
        return AutoSetting(name, bool(row["enabled"]), parse_window(row["window"]), row["kind"],
                           last)

    def read(self, name: str) -> AutoUpdateRead:
        """The API view of the instance's setting and last result."""
        setting = self.setting(name)
        rows = self.db.query("SELECT * FROM auto_updates WHERE instance = ?", (name,))
        row = rows[0] if rows else None
        moment = self.clock().astimezone(self.tz)
        return AutoUpdateRead(
            instance=name, enabled=setting.enabled, window=setting.window.text(),
            kind=setting.kind, next_window=setting.window.next_opening(moment).isoformat()
            if setting.enabled else None,
            last_at=row["last_at"] if row else None,
            last_result=row["last_result"] if row else None,
            last_message=row["last_message"] if row else None,
            last_operation=row["last_operation"] if row else None)

    def configure(self, name: str, request: AutoUpdateRequest) -> AutoUpdateRead:
        """Turn automatic updates on or off; the window and kind are checked first."""
        current = self.setting(name)
        window = parse_window(request.window) if request.window is not None else current.window
        kind = request.kind or current.kind
        if kind not in KINDS:
            raise Invalid(f"kind must be digest or version, not {kind!r}")
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO auto_updates (instance, enabled, window, kind, updated_at) "
                "VALUES (?,?,?,?,?) ON CONFLICT(instance) DO UPDATE SET enabled = "
                "excluded.enabled, window = excluded.window, kind = excluded.kind, "
                "updated_at = excluded.updated_at",
                (name, int(request.enabled), window.text(), kind, now()))
        return self.read(name)

    def _record(self, name: str, result: str, message: str, op_id: str) -> None:
        moment = self.clock().isoformat(timespec="seconds")
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO auto_updates (instance, enabled, window, kind, updated_at, last_at,"
                " last_result, last_message, last_operation) VALUES (?,0,?,'digest',?,?,?,?,?) "
                "ON CONFLICT(instance) DO UPDATE SET last_at = excluded.last_at, last_result = "
                "excluded.last_result, last_message = excluded.last_message, last_operation = "
                "excluded.last_operation", (name, DEFAULT_WINDOW, now(), moment, result,
                                            message[:500], op_id))
        self.bus.publish(Event("auto-update", name, result, {
            "instance": name, "result": result, "message": message, "operation": op_id}))

    # -- one run ----------------------------------------------------------------------------------
    async def run_now(self, name: str) -> tuple[Accepted, asyncio.Task[None]]:
        """Start the instance's auto-update operation now (the window is not consulted)."""
        setting = self.setting(name)
        updates = self.updates
        updates._claimable(name)
        updates._unfinished(name)
        runner = updates.apps.runner
        await runner.ensure_engine(AUTO_UPDATE)
        op = runner.begin(AUTO_UPDATE, name)
        task = runner.start(op, lambda run: self._work(run, setting.kind))
        record = updates.apps.records.get(name)
        return Accepted(operation=op, instance=name, app=record.app_ref,
                        version=record.version), task

    async def _work(self, run: Run, kind: str) -> Outcome:
        name = run.op.instance
        try:
            outcome, result, message = await self._apply(run, kind)
        except StackHubError as err:
            if not run.touched_engine:
                result = "skipped" if isinstance(err, Conflict | Invalid | StorageFull) \
                    else "failed"
            else:
                result = "rolled-back" if "rolled back" in err.message else "failed"
            self._record(name, result, err.message, run.op.id)
            raise
        self._record(name, result, message, run.op.id)
        return outcome

    async def _apply(self, run: Run, kind: str) -> tuple[Outcome, str, str]:
        name = run.op.instance
        run.step("check", 2.0)
        await faults.checkpoint("auto-update-checking")
        if run.prior_status in SKIP:
            return self._skip(run, f"not updated automatically: {name} is {run.prior_status}; "
                              "automatic updates apply only to apps that run")
        found = (await self.updates.check(name))[0]
        if not found.update_available:
            if found.errors:
                raise Conflict("the update check failed: " + "; ".join(found.errors))
            run.step("up-to-date", 100.0)
            return None, "up-to-date", f"{name} is up to date ({found.current_version})"
        if found.blocked:
            return self._skip(run, f"not updated automatically: {found.blocked}")
        if found.update_kind == "version" and kind != "version":
            return self._skip(run, f"not updated automatically: version {found.latest_version} "
                              "is available but this app's automatic updates apply only new "
                              "images of the same version (set the kind to version, or update "
                              "it by hand)")
        prepared = await self.updates.prepare(name, UpdateRequest())
        reason = "auto-" + prepared.reason
        await self.updates.flows.update(run, prepared.draft, stability=prepared.stability,
                                        reason=reason)
        return InstanceStatus.RUNNING, "updated", f"{name}: {reason}"

    @staticmethod
    def _skip(run: Run, message: str) -> tuple[Outcome, str, str]:
        """End a run that the policy holds back: a success that changed nothing, with why."""
        run.step("skipped", 100.0)
        return None, "skipped", message

    # -- scheduler ------------------------------------------------------------------------------
    def due(self, moment: datetime | None = None) -> list[str]:
        """Name the enabled instances whose window is open and not yet tried in this opening."""
        at = (moment or self.clock()).astimezone(self.tz)
        found: list[str] = []
        for row in self.db.query("SELECT instance FROM auto_updates WHERE enabled = 1 "
                                 "ORDER BY instance"):
            setting = self.setting(row["instance"])
            opened = setting.window.opened(at)
            if opened is None or (setting.last_at is not None and setting.last_at >= opened):
                continue
            found.append(setting.instance)
        return found

    async def tick(self) -> dict[str, str]:
        """Run every due auto-update, one after another; return instance -> operation state."""
        ran: dict[str, str] = {}
        for name in self.due():
            if self.updates.apps.runner.busy(name):
                continue  # tried again at the next tick, while the window is open
            try:
                accepted, task = await self.run_now(name)
            except StackHubError as err:
                log.warning("auto-update of %s not started: %s", name, err.message)
                ran[name] = "refused"
                continue
            with contextlib.suppress(Exception):
                await task
            ran[name] = self.updates.apps.operation(accepted.operation.id).state.value
        return ran

    async def run(self) -> None:
        """Tick every STACKHUB_AUTO_UPDATE_TICK seconds (default: each minute) until cancelled."""
        interval = tick_interval()
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the auto-update round failed")
            await self.sleep(interval)

    def start(self) -> asyncio.Task[None]:
        """Run `run()` in the background (the server's lifespan)."""
        return asyncio.get_running_loop().create_task(self.run(), name="auto-updates")

    @staticmethod
    async def stop(task: asyncio.Task[None]) -> None:
        """Cancel the background rounds and wait for them to end."""
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def tick_interval() -> float:
    """Seconds between scheduler rounds: STACKHUB_AUTO_UPDATE_TICK, else 60."""
    try:
        return max(float(os.environ.get("STACKHUB_AUTO_UPDATE_TICK", "60")), 1.0)
    except ValueError:
        return 60.0
