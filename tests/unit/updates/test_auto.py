"""Automatic update windows and their scheduling, with a clock the test moves by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from stackhub.errors import Conflict, Invalid, NotFound
from stackhub.operations.journal import OperationFilter
from stackhub.operations.models import OperationState
from stackhub.services import Services
from stackhub.updates.auto import parse_window
from stackhub.updates.models import AutoUpdateRequest, UpdateRead
from tests.unit.support import create_instance, instance_record

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str, tz: Any = BERLIN) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz)


@pytest.mark.parametrize(("text", "canonical"), [
    ("sun 04:00", "sun 04:00-06:00"),
    ("Sunday 04:00", "sun 04:00-06:00"),
    ("sundays 4:00-4:30", "sun 04:00-04:30"),
    ("daily 03:00-05:00", "daily 03:00-05:00"),
    ("sat,sun 23:30-01:00", "sat,sun 23:30-01:00"),
    ("mon,tue,wed,thu,fri,sat,sun 01:00", "daily 01:00-03:00"),
])
def test_windows_are_read_and_written_back(text: str, canonical: str) -> None:
    assert parse_window(text).text() == canonical
    assert parse_window(canonical).text() == canonical


@pytest.mark.parametrize("text", ["", "04:00", "sun", "sun 24:00", "sun 04:60", "funday 04:00",
                                  "su 04:00", "sun 04:00-04:00", "sun 4pm", "sun 04:00 extra"])
def test_bad_windows_are_refused_with_the_syntax(text: str) -> None:
    with pytest.raises(Invalid) as err:
        parse_window(text)
    assert "sun 04:00" in err.value.message


def test_a_window_is_open_only_on_its_days_and_hours() -> None:
    window = parse_window("sun 04:00")  # 2026-03-01 is a Sunday
    assert window.opened(at("2026-03-01T03:59")) is None
    assert window.opened(at("2026-03-01T04:00")) == at("2026-03-01T04:00")
    assert window.opened(at("2026-03-01T05:59")) == at("2026-03-01T04:00")
    assert window.opened(at("2026-03-01T06:00")) is None
    assert window.opened(at("2026-03-02T04:30")) is None  # a Monday
    assert window.next_opening(at("2026-03-01T04:00")) == at("2026-03-08T04:00")
    assert window.next_opening(at("2026-02-27T12:00")) == at("2026-03-01T04:00")


def test_a_window_past_midnight_belongs_to_the_day_it_opened() -> None:
    window = parse_window("sat 23:00-01:00")  # 2026-02-28 is a Saturday
    assert window.opened(at("2026-03-01T00:30")) == at("2026-02-28T23:00")
    assert window.opened(at("2026-03-01T01:00")) is None
    assert window.opened(at("2026-02-28T00:30")) is None  # Friday night is not in it


def test_a_window_is_read_in_the_servers_time_zone() -> None:
    window = parse_window("sun 04:00")
    assert window.opened(at("2026-03-01T03:30", UTC).astimezone(BERLIN)) is not None
    assert window.opened(at("2026-03-01T04:30", UTC).astimezone(BERLIN)) is not None
    assert window.opened(at("2026-03-01T05:30", UTC).astimezone(BERLIN)) is None


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def auto(live: Services) -> tuple[Services, Clock, list[str]]:
    clock = Clock(at("2026-02-28T12:00", UTC))
    live.auto_updates.clock, live.auto_updates.tz = clock, BERLIN
    checked: list[str] = []

    async def check(name: str | None = None) -> list[UpdateRead]:
        assert name is not None
        checked.append(name)
        return [UpdateRead(instance=name, current_version="1.0", update_available=False)]

    live.updates.check = check  # type: ignore[method-assign]
    op = create_instance(live.records, instance_record("blog"))
    live.runner.journal.finish(op.id, OperationState.SUCCEEDED, instance_status="running")
    return live, clock, checked


async def test_off_by_default_and_bad_settings_change_nothing(
        auto: tuple[Services, Clock, list[str]]) -> None:
    live, _clock, _checked = auto
    read = live.auto_updates.read("blog")
    assert (read.enabled, read.window, read.kind, read.next_window) == (
        False, "sun 04:00-06:00", "digest", None)
    with pytest.raises(Invalid):
        live.auto_updates.configure("blog", AutoUpdateRequest(enabled=True, window="sun 25:00"))
    with pytest.raises(NotFound):
        live.auto_updates.configure("nope", AutoUpdateRequest(enabled=True))
    assert live.auto_updates.read("blog").enabled is False
    assert live.db.query("SELECT * FROM auto_updates") == []


async def test_the_scheduler_runs_once_per_opening_inside_the_window(
        auto: tuple[Services, Clock, list[str]]) -> None:
    live, clock, checked = auto
    updater = live.auto_updates
    read = updater.configure("blog", AutoUpdateRequest(enabled=True, window="sun 04:00-05:00",
                                                       kind="version"))
    assert read.next_window == "2026-03-01T04:00:00+01:00"
    assert await updater.tick() == {}  # Saturday noon: closed
    clock.now = at("2026-03-01T03:59")
    assert updater.due() == []
    clock.now = at("2026-03-01T04:10")
    assert updater.due() == ["blog"]
    assert await updater.tick() == {"blog": "succeeded"}
    assert checked == ["blog"]
    ops = live.runner.journal.page(OperationFilter(), limit=5).items
    assert (ops[0].kind, ops[0].state) == ("auto-update", OperationState.SUCCEEDED)
    assert [s.name for s in ops[0].steps] == ["check", "up-to-date"]
    after = updater.read("blog")
    assert after.last_result == "up-to-date" and after.last_operation == ops[0].id
    clock.now = at("2026-03-01T04:40")
    assert await updater.tick() == {}  # tried in this opening already
    clock.now = at("2026-03-08T04:05")
    assert updater.due() == ["blog"]  # the next Sunday
    updater.configure("blog", AutoUpdateRequest(enabled=False))
    assert updater.due() == []


async def test_a_new_version_is_not_applied_with_digest_only(
        auto: tuple[Services, Clock, list[str]]) -> None:
    live, clock, _checked = auto

    async def check(name: str | None = None) -> list[UpdateRead]:
        return [UpdateRead(instance="blog", current_version="1.0", update_available=True,
                           latest_version="2.0", update_kind="version")]

    live.updates.check = check  # type: ignore[method-assign]
    live.auto_updates.configure("blog", AutoUpdateRequest(enabled=True, window="daily 00:00"))
    clock.now = at("2026-03-02T00:30")
    # held back by the policy: a success that changed nothing (not a red failure), with why
    assert await live.auto_updates.tick() == {"blog": "succeeded"}
    read = live.auto_updates.read("blog")
    assert read.last_result == "skipped" and "version 2.0 is available" in str(read.last_message)
    op = live.runner.journal.page(OperationFilter(), limit=1).items[0]
    assert op.kind == "auto-update" and op.error is None and op.step == "skipped"
    assert live.records.get("blog").status == "running"


async def test_a_database_major_change_is_never_applied(
        auto: tuple[Services, Clock, list[str]]) -> None:
    live, _clock, _checked = auto

    async def check(name: str | None = None) -> list[UpdateRead]:
        return [UpdateRead(instance="blog", current_version="1.0", update_available=True,
                           latest_version="2.0", update_kind="version",
                           blocked="a database image changes its major version")]

    live.updates.check = check  # type: ignore[method-assign]
    live.auto_updates.configure("blog", AutoUpdateRequest(enabled=True, kind="version"))
    _accepted, task = await live.auto_updates.run_now("blog")
    await task
    read = live.auto_updates.read("blog")
    assert read.last_result == "skipped" and "major version" in str(read.last_message)


async def test_a_busy_instance_is_refused_now_and_left_for_the_next_tick(
        auto: tuple[Services, Clock, list[str]]) -> None:
    live, clock, checked = auto
    live.auto_updates.configure("blog", AutoUpdateRequest(enabled=True, window="daily 00:00"))
    clock.now = at("2026-03-02T00:30")
    live.runner._held.add("blog")  # another operation holds it
    try:
        with pytest.raises(Conflict):
            await live.auto_updates.run_now("blog")
        assert await live.auto_updates.tick() == {}
    finally:
        live.runner._held.discard("blog")
    assert checked == [] and live.auto_updates.due() == ["blog"]
