"""Backups in a real browser: the Backups page (repositories, recovery kit, each app's health),
backing an app up and restoring it with the live progress of the operation, the default
schedule form (the app follows it until it gets its own), the schedule form (a retention that
keeps nothing is refused before it is sent), at 1440 px in English, and the
app page's backup section and the Backups page at 375 px in Chinese (no sideways scrolling);
the backup of StackHub itself with its live progress, in both.

The module runs its own server (real engine, real restic on the local repository).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, expect

from tests.e2e.conftest import (
    DESKTOP,
    PHONE,
    STORE_APP,
    WAIT,
    Server,
    ensure_instance,
    no_sideways_scroll,
    own_server,
    sign_in,
    t,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "keeper"
NAME = "bk-web"
expect.set_options(timeout=WAIT)
errors: list[str] = []


def save_schedule(form: Locator, prefix: str, save: str, *, at: str, keep_weekly: str) -> None:
    """Type a schedule form's time and weekly count (blurred: the number is committed), save."""
    form.locator(f'{t(f"{prefix}-at")} input').fill(at)
    field = form.locator(f'{t(f"{prefix}-keep_weekly")} input')
    field.fill(keep_weekly)
    field.blur()
    form.locator(t(save)).click()


@pytest.fixture(scope="module")
def backup_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own with an admin and one app installed."""
    with own_server(tmp_path_factory, "backups", USER) as srv:
        ensure_instance(srv, NAME, STORE_APP)
        yield srv


@pytest.fixture(scope="module")
def signed_in(browser: Any, backup_server: Server) -> dict[str, Any]:
    return sign_in(browser, backup_server, USER)


def phone_shot(page: Any, shots: Path, name: str) -> None:
    """Let the page settle, check it fits 375 px without scrolling sideways, screenshot it."""
    page.wait_for_timeout(300)
    no_sideways_scroll(page)
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def test_0_app_list_before_any_backup(open_page: Any, backup_server: Server) -> None:
    page = open_page(DESKTOP, "en-US")
    page.goto(f"{backup_server.url}/apps")
    expect(page.locator(t(f"last-backup-{NAME}"))).to_have_text("No backup yet")
    assert backup_server.api("GET", f"/api/instances/{NAME}").json()["last_backup_at"] is None
    assert not errors, errors


def test_1_backups_page_backup_restore_and_schedule(open_page: Any, backup_server: Server,
                                                    shots: Path) -> None:
    srv = backup_server
    page = open_page(DESKTOP, "en-US")
    page.goto(f"{srv.url}/backups")
    expect(page.locator(t("repo-local"))).to_contain_text("default")
    with page.expect_download() as download:
        page.locator(t("repo-local")).locator(t("repo-key")).click()
    kit = Path(download.value.path()).read_text()
    password = (srv.data / "secrets" / "backup" / "local.password").read_text().strip()
    assert f"Password: {password}" in kit and "without" in kit
    from stackhub.backup.kit import parse  # what `stackhub restore-system --kit` reads

    assert parse(kit).password == password
    expect(page.locator(t(f"backup-state-{NAME}"))).to_contain_text("None")
    panel = page.locator(t("backup-panel"))
    expect(panel.locator(t("backup-none"))).to_be_visible()

    # back up now: the operation's live progress, then the snapshot in the list
    panel.locator(t("backup-now")).click()
    progress = panel.locator(t("backup-progress"))
    expect(progress).to_contain_text("Backup")
    expect(progress).to_contain_text("Done", timeout=120_000)
    expect(panel.locator(t("backup-snapshot"))).to_have_count(1)
    expect(panel.locator(t("backup-health"))).to_have_text("OK")
    snaps = srv.api("GET", "/api/backups", params={"instance": NAME}).json()
    assert len(snaps) == 1 and snaps[0]["kind"] == "manual"

    # the default schedule: every app without its own follows it
    default = page.locator(t("default-schedule"))
    expect(default.locator(t("default-none"))).to_be_visible()
    save_schedule(default, "default", "default-save", at="02:45", keep_weekly="2")
    expect(page.locator(".n-message", has_text="default schedule is saved")).to_have_count(1)
    expect(default.locator(t("default-applies"))).to_contain_text(NAME)
    saved = srv.api("GET", "/api/backups/schedules/default").json()
    assert (saved["at"], saved["keep_weekly"], saved["instances"]) == ("02:45", 2, [NAME])
    expect(page.locator(t(f"backup-state-{NAME}")).locator(t("backup-by-default"))).to_be_visible()
    panel = page.locator(t("backup-panel"))  # read again: which schedule applies
    expect(panel.locator(t("schedule-follows-default"))).to_be_visible()
    status = srv.api("GET", "/api/backups/status", params={"instance": NAME}).json()[0]
    assert (status["schedule_source"], status["scheduled"]) == ("default", True)

    # the schedule: a retention that keeps nothing cannot be sent; a good one is saved
    form = panel.locator(t("backup-schedule"))
    for key in ("keep_daily", "keep_weekly", "keep_monthly"):
        field = form.locator(f'{t(f"schedule-{key}")} input')
        field.fill("0")
        field.blur()
    expect(form.locator(".n-alert")).to_contain_text("keeps nothing")
    expect(form.locator(t("schedule-save"))).to_be_disabled()
    assert srv.api("GET", f"/api/backups/instances/{NAME}/schedule").status_code == 404
    field = form.locator(f'{t("schedule-keep_daily")} input')
    field.fill("5")
    field.blur()
    form.locator(f'{t("schedule-at")} input').fill("04:15")
    form.locator(t("schedule-save")).click()
    expect(page.locator(".n-message", has_text="Schedule saved")).to_have_count(1)
    saved = srv.api("GET", f"/api/backups/instances/{NAME}/schedule").json()
    assert (saved["every"], saved["at"], saved["keep_daily"], saved["keep_weekly"]) == (
        "daily", "04:15", 5, 0)
    assert srv.api("GET", "/api/backups/schedules/default").json()["instances"] == []
    expect(panel.locator(t("schedule-follows-default"))).to_have_count(0)

    # restore the snapshot in place, following its progress
    marker = srv.data / "appdata" / NAME / "after-backup.txt"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("made after the backup")
    panel.locator(t("backup-snapshot")).first.locator(t("backup-restore")).click()
    dialog = page.locator(t("restore-dialog"))
    expect(dialog).to_contain_text("kept aside")
    dialog.locator(t("restore-confirm")).click()
    expect(progress).to_contain_text("Restore")
    expect(progress).to_contain_text("Done", timeout=120_000)
    assert not marker.exists()  # the data is the backup's again
    assert srv.api("GET", f"/api/instances/{NAME}").json()["status"] == "running"

    # a repository on a second disk made the default, then the local one again
    made = srv.api("POST", "/api/backups/repositories",
                   json={"name": "disk2", "url": str(srv.data.parent / "disk2-repo")})
    assert made.status_code == 201, made.text
    page.reload()
    page.locator(t("repo-disk2")).locator(t("repo-make-default")).click()
    expect(page.locator(".n-message", has_text="disk2 is now the default")).to_have_count(1)
    expect(page.locator(t("repo-disk2"))).to_contain_text("default")
    expect(page.locator(t("repo-local")).locator(t("repo-make-default"))).to_be_visible()
    repos = srv.api("GET", "/api/backups/repositories").json()
    assert [(r["name"], r["default"]) for r in repos] == [("disk2", True), ("local", False)]
    page.locator(t("repo-local")).locator(t("repo-make-default")).click()
    expect(page.locator(t("repo-disk2")).locator(t("repo-make-default"))).to_be_visible()
    assert srv.api("GET", "/api/backups/repositories").json()[0]["name"] == "local"
    page.screenshot(path=str(shots / "backups-1440-en.png"), full_page=True, animations="disabled")
    assert not errors, errors


def test_2_phone_chinese_app_page_and_backups_page(open_page: Any, backup_server: Server,
                                                   shots: Path) -> None:
    srv = backup_server
    page = open_page(PHONE, "zh-CN")
    page.goto(f"{srv.url}/apps/{NAME}")
    panel = page.locator(t("backup-panel"))
    expect(panel).to_contain_text("备份")
    expect(panel).to_contain_text("上次成功备份")
    expect(panel.locator(t("backup-snapshot"))).to_have_count(1)
    expect(panel.locator(t("backup-health"))).to_have_text("正常")
    phone_shot(page, shots, "backups-app-375-zh")
    page.goto(f"{srv.url}/backups")
    expect(page.locator(t("repo-local"))).to_contain_text("默认")
    panel = page.locator(t("backup-panel"))
    expect(panel).to_contain_text("计划与保留")
    expect(page.locator(t("default-schedule"))).to_contain_text("默认计划")
    expect(page.locator(f'{t("default-schedule")} {t("default-at")} input')).to_have_value("02:45")
    expect(panel.locator(t("backup-snapshot"))).to_have_count(1)
    expect(panel.locator(f'{t("schedule-at")} input')).to_have_value("04:15")
    phone_shot(page, shots, "backups-375-zh")
    assert not errors, errors


def test_3_app_list_shows_the_last_good_backup(open_page: Any, backup_server: Server,
                                               shots: Path) -> None:
    srv = backup_server
    last = srv.api("GET", f"/api/instances/{NAME}").json()["last_backup_at"]
    status = srv.api("GET", "/api/backups/status", params={"instance": NAME})
    assert last is not None and status.status_code == 200, status.text
    # the same time the Backups page and the app page show
    assert [s["last_success_at"] for s in status.json() if s["instance"] == NAME] == [last]
    for viewport, locale, text in ((DESKTOP, "en-US", "Last backup: "),
                                   (PHONE, "zh-CN", "上次备份")):
        page = open_page(viewport, locale)
        page.goto(f"{srv.url}/apps")
        shown = page.locator(t(f"last-backup-{NAME}"))
        expect(shown).to_contain_text(text)
        expect(shown).to_be_visible()
        if viewport is PHONE:
            phone_shot(page, shots, "apps-last-backup-375-zh")
    assert not errors, errors


def test_4_system_backup_from_the_backups_page(open_page: Any, backup_server: Server,
                                               shots: Path) -> None:
    """"Back up StackHub now" runs the system-backup operation with its live progress, at
    1440 px in English, and again at 375 px in Chinese (one at a time, both succeed)."""
    srv = backup_server
    page = open_page(DESKTOP, "en-US")
    page.goto(f"{srv.url}/backups")
    card = page.locator(t("system-backup"))
    expect(card).to_contain_text("StackHub itself")
    expect(card.locator(t("system-backup-last"))).to_have_text("No system backup yet")
    card.locator(t("system-backup-now")).click()
    expect(card.locator(t("system-backup-progress"))).to_have_attribute("data-state", "succeeded")
    expect(card.locator(t("system-backup-last"))).to_contain_text("Latest: ")
    expect(card).to_contain_text("stackhub restore-system --kit FILE")
    ops = srv.api("GET", "/api/operations", params={"instance": "@system"}).json()["items"]
    assert [(o["kind"], o["state"]) for o in ops] == [("system-backup", "succeeded")]
    snaps = [s for s in srv.api("GET", "/api/backups").json() if s["kind"] == "system"]
    assert len(snaps) == 1

    # the system backup's schedule, set from the card
    form = card.locator(t("system-schedule"))
    expect(form.locator(t("system-schedule-none"))).to_be_visible()
    save_schedule(form, "system", "system-schedule-save", at="02:30", keep_weekly="0")
    saved_note = page.locator(".n-message", has_text="system backup's schedule is saved")
    expect(saved_note).to_have_count(1)
    expect(form.locator(t("system-schedule-state"))).to_contain_text("Next")
    saved = srv.api("GET", "/api/backups/schedules/system").json()
    assert (saved["at"], saved["keep_daily"], saved["keep_weekly"]) == ("02:30", 7, 0)
    assert saved["status"]["instance"] == "@system" and saved["next_run_at"]
    page.screenshot(path=str(shots / "backups-system-1440-en.png"), full_page=True)

    page = open_page(PHONE, "zh-CN")
    page.goto(f"{srv.url}/backups")
    card = page.locator(t("system-backup"))
    expect(card).to_contain_text("StackHub 本身")
    expect(card.locator(t("system-backup-last"))).to_contain_text("最近一次")
    card.locator(t("system-backup-now")).click()
    expect(card.locator(t("system-backup-progress"))).to_have_attribute("data-state", "succeeded")
    ops = srv.api("GET", "/api/operations", params={"instance": "@system"}).json()["items"]
    assert [o["state"] for o in ops] == ["succeeded", "succeeded"]
    expect(card.locator(f'{t("system-schedule")} {t("system-at")} input')).to_have_value("02:30")
    expect(card.locator(t("system-schedule"))).to_contain_text("下次")
    phone_shot(page, shots, "backups-system-375-zh")
    assert not errors, errors
