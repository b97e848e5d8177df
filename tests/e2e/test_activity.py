"""The activity view in a real browser: recent operations with their steps, durations and errors,
in English and Chinese, at 1440 px and at 375 px (no sideways scrolling on a phone).

The module runs its own server (its own data root and first admin), so it does not depend on,
or disturb, the order of test_console.py, whose first test sets the shared server up.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    DESKTOP,
    PHONE,
    STORE_APP,
    WAIT,
    Server,
    install_and_wait,
    no_sideways_scroll,
    own_server,
    sign_in,
    t,
    wait_operation,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "keeper"
GOOD = "activity-web"
BROKEN = "activity-broken"
MISSING_IMAGE = "127.0.0.1:5000/stackhub-test/does-not-exist:9"
DURATION = re.compile(r"^\d+(\.\d)?\s?(ms|s|m|h|毫秒|秒|分钟|小时)")
INSTALL_STEPS = ["pull", "start", "wait", "verify"]
expect.set_options(timeout=WAIT)
errors: list[str] = []


@pytest.fixture(scope="module")
def activity_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own, with an admin, a store, and three operations journaled."""
    with own_server(tmp_path_factory, "activity", USER) as srv:
        # a good install, a restart of it, and an install whose image cannot be pulled
        done = install_and_wait(srv, GOOD, STORE_APP)
        assert done["state"] == "succeeded", done
        restarted = srv.api("POST", f"/api/instances/{GOOD}/restart")
        assert restarted.status_code == 200, restarted.text
        ops = srv.api("GET", "/api/operations", params={"instance": GOOD, "kind": "restart"})
        assert wait_operation(srv, ops.json()["items"][0]["id"])["state"] == "succeeded"
        compose = f"services:\n  web:\n    image: {MISSING_IMAGE}\n"
        failed = install_and_wait(srv, BROKEN, {"kind": "compose", "compose": compose})
        assert failed["state"] == "failed" and failed["error"], failed
        yield srv


@pytest.fixture(scope="module")
def signed_in(browser: Any, activity_server: Server) -> dict[str, Any]:
    """The admin's signed-in browser state (cookies), to open other sizes and languages with."""
    return sign_in(browser, activity_server, USER)


def shot(page: Any, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), animations="disabled")


def row(page: Any, instance: str, kind: str) -> Any:
    return page.locator(f'{t("operation")}[data-instance="{instance}"][data-kind="{kind}"]').first


def check_install_steps(page: Any, details: Any, step_names: list[str]) -> None:
    steps = details.locator(t("operation-step"))
    expect(steps).to_have_count(len(INSTALL_STEPS))
    assert [steps.nth(i).get_attribute("data-step") for i in range(steps.count())] == INSTALL_STEPS
    for i, name in enumerate(step_names):
        expect(steps.nth(i)).to_contain_text(name)
    for text in details.locator(t("step-duration")).all_inner_texts():
        assert DURATION.match(text.strip()), text
    # each step's bar is as wide as the step took: together they cover the whole timeline
    widths = details.locator(".fill").evaluate_all(
        "(els) => els.map((el) => el.getBoundingClientRect().width)")
    track = details.locator(".track").first.evaluate("(el) => el.getBoundingClientRect().width")
    assert all(w >= 2 for w in widths), widths
    assert 0.8 * track <= sum(widths) <= 1.05 * track, (widths, track)


def test_desktop_english(open_page: Any, activity_server: Server, shots: Path) -> None:
    page = open_page(DESKTOP, "en-US")
    page.goto(activity_server.url)
    nav = page.locator(".n-layout-sider")
    nav.locator("text=Activity").click()
    page.wait_for_url(re.compile(r"/activity$"))
    expect(page.locator("h1")).to_have_text("Activity")
    table = page.locator(t("operations-table"))
    install = row(page, GOOD, "install")
    expect(install).to_have_attribute("data-state", "succeeded")
    expect(install.locator(t("operation-state"))).to_have_text("Succeeded")
    expect(install).to_contain_text("Install")
    assert DURATION.match(install.locator(t("operation-duration")).inner_text()), \
        install.inner_text()
    expect(install.locator(f'{t("operation-bar")} .segment')).to_have_count(len(INSTALL_STEPS))
    expect(row(page, GOOD, "restart")).to_have_attribute("data-state", "succeeded")
    broken = row(page, BROKEN, "install")
    expect(broken).to_have_attribute("data-state", "failed")
    expect(broken).to_contain_text("could not pull image")
    expect(page.locator(t("activity-total"))).to_have_text("3 in all")
    # the instance links to its page; the failed install left no instance to link to
    assert install.locator(f'a[href="/apps/{GOOD}"]').count() == 1
    assert broken.locator("a").count() == 0

    install.locator("td").nth(2).click()  # a row opens its steps
    details = page.locator(f'{t("operation-steps")}').first
    check_install_steps(page, details, ["Download images", "Start containers",
                                        "Wait until ready", "Check it runs"])
    broken.locator("td").nth(2).click()
    error = page.locator(t("operation-error"))
    expect(error).to_contain_text(f"could not pull image {MISSING_IMAGE}")
    assert table.is_visible()
    shot(page, shots, "30-activity")

    # filters live in the address
    page.click(t("filter-state"))
    page.click('.n-base-select-option:has-text("Failed")')
    page.wait_for_url(re.compile(r"/activity\?state=failed$"))
    expect(page.locator(t("operation"))).to_have_count(1)
    expect(page.locator(t("activity-total"))).to_have_text("1 in all")
    page.goto(f"{activity_server.url}/activity?instance={GOOD}&kind=restart")
    expect(page.locator(t("operation"))).to_have_count(1)
    expect(row(page, GOOD, "restart")).to_be_visible()
    page.goto(f"{activity_server.url}/activity?state=interrupted")
    expect(page.locator(t("empty"))).to_contain_text("No operations match these filters")
    page.click(t("clear-filters"))
    page.wait_for_url(re.compile(r"/activity$"))
    expect(page.locator(t("operation"))).to_have_count(3)


def test_instance_page_lists_its_own_operations(open_page: Any, activity_server: Server,
                                                shots: Path) -> None:
    page = open_page(DESKTOP, "en-US")
    page.goto(f"{activity_server.url}/apps/{GOOD}?tab=operations")
    ops = page.locator(f'{t("instance-operations")} {t("operation")}')
    expect(ops).to_have_count(2)  # newest first
    assert [ops.nth(i).get_attribute("data-kind") for i in range(2)] == ["restart", "install"]
    link = page.locator(t("instance-activity-link"))
    expect(link).to_contain_text("All activity (2)")
    shot(page, shots, "31-instance-operations")
    link.click()
    page.wait_for_url(re.compile(rf"/activity\?instance={GOOD}$"))
    expect(page.locator(t("operation"))).to_have_count(2)


def test_desktop_chinese(open_page: Any, activity_server: Server, shots: Path) -> None:
    page = open_page(DESKTOP, "zh-CN")
    page.goto(f"{activity_server.url}/activity")
    page.wait_for_selector("html[lang='zh-CN']")
    expect(page.locator("h1")).to_have_text("操作记录")
    expect(page.locator(".n-layout-sider")).to_contain_text("操作记录")
    install = row(page, GOOD, "install")
    expect(install.locator(t("operation-state"))).to_have_text("成功")
    expect(install).to_contain_text("安装")
    expect(row(page, BROKEN, "install").locator(t("operation-state"))).to_have_text("失败")
    expect(page.locator("thead")).to_contain_text("耗时")
    expect(page.locator(t("activity-total"))).to_have_text("共 3 条")
    install.locator("td").nth(2).click()
    details = page.locator(t("operation-steps")).first
    check_install_steps(page, details, ["下载镜像", "启动容器", "等待就绪", "检查运行状态"])
    text = page.inner_text(".n-layout-content")
    for english in ("Activity", "Succeeded", "Duration", "Download images", "Show steps"):
        assert english not in text, english
    shot(page, shots, "32-activity-zh")


@pytest.mark.parametrize(("locale", "names", "failed", "toggle"), [
    ("en-US", ["Download images", "Start containers", "Wait until ready", "Check it runs"],
     "Failed", "Hide steps"),
    ("zh-CN", ["下载镜像", "启动容器", "等待就绪", "检查运行状态"], "失败", "收起步骤"),
], ids=["en", "zh"])
def test_phone(open_page: Any, activity_server: Server, shots: Path, locale: str, names: list[str],
               failed: str, toggle: str) -> None:
    page = open_page(PHONE, locale)
    page.goto(f"{activity_server.url}/activity")
    cards = page.locator(t("operations-cards"))
    expect(cards.locator(t("operation"))).to_have_count(3)
    assert page.locator(t("operations-table")).count() == 0
    no_sideways_scroll(page)
    shot(page, shots, f"33-activity-phone-{locale[:2]}")

    install = row(page, GOOD, "install")
    assert DURATION.match(install.locator(t("operation-duration")).inner_text())
    install.locator(t("operation-toggle")).click()
    expect(install.locator(t("operation-toggle"))).to_have_text(toggle)
    check_install_steps(page, install.locator(t("operation-steps")), names)
    broken = row(page, BROKEN, "install")
    expect(broken.locator(t("operation-state"))).to_have_text(failed)
    broken.locator(t("operation-toggle")).click()
    expect(broken.locator(t("operation-error"))).to_contain_text(MISSING_IMAGE)
    no_sideways_scroll(page)
    install.scroll_into_view_if_needed()
    shot(page, shots, f"34-activity-phone-{locale[:2]}-steps")
    broken.locator(t("operation-error")).scroll_into_view_if_needed()
    no_sideways_scroll(page)
    shot(page, shots, f"35-activity-phone-{locale[:2]}-error")

    page.click(t("menu-button"))  # the entry is in the phone's menu too
    page.wait_for_selector(".n-drawer .n-menu")
    assert page.locator(".n-drawer .n-menu a[href='/activity']").count() == 1


def test_no_script_errors() -> None:
    assert errors == []
