"""Clone and automatic updates on an app's page in a real browser (issue 13, items 4 and 6).

English and Chinese, 375 px and 1440 px. The module runs its own server with one instance.
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
    ensure_instance,
    no_sideways_scroll,
    own_server,
    sign_in,
    t,
    wait_operation,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "cloner"
PIN_LOCALE = True  # open_page stores the console language as a user would
NAME = "cl-e2e"
COPY = "cl-e2e-copy"
expect.set_options(timeout=WAIT)


@pytest.fixture(scope="module")
def clone_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with own_server(tmp_path_factory, "clone", USER, env={"TZ": "UTC"}) as srv:
        ensure_instance(srv, NAME, STORE_APP)
        yield srv


@pytest.fixture(scope="module")
def signed_in(browser: Any, clone_server: Server) -> dict[str, Any]:
    return sign_in(browser, clone_server, USER)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["375", "1440"])
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"], ids=["en", "zh"])
def test_the_clone_dialog_and_auto_update_card_fit(open_page: Any, clone_server: Server,
                                                   shots: Path, viewport: dict[str, int],
                                                   locale: str) -> None:
    zh = locale.startswith("zh")
    page = open_page(viewport, locale)
    page.goto(f"{clone_server.url}/apps/{NAME}")
    card = page.locator(t("auto-update"))
    expect(card).to_contain_text("自动更新" if zh else "Automatic updates")
    expect(page.locator(t("auto-update-window")).locator("xpath=ancestor::*[contains("
                                                          "@class,'n-input')][1]")).to_be_visible()
    page.locator(t("instance-clone")).click()
    dialog = page.locator(t("clone-dialog"))
    expect(dialog).to_contain_text(f"克隆 {NAME}" if zh else f"Clone {NAME}")
    expect(page.locator(t("clone-name"))).to_have_value(f"{NAME}-copy")
    no_sideways_scroll(page, viewport["width"])
    page.screenshot(path=str(shots / f"13-clone-{locale}-{viewport['width']}.png"))
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    card.scroll_into_view_if_needed()
    no_sideways_scroll(page, viewport["width"])
    page.screenshot(path=str(shots / f"13-auto-update-{locale}-{viewport['width']}.png"))


def test_auto_update_is_saved_and_a_bad_window_changes_nothing(open_page: Any,
                                                                clone_server: Server) -> None:
    page = open_page(DESKTOP, "en-US")
    page.goto(f"{clone_server.url}/apps/{NAME}")
    page.locator(t("auto-update-switch")).click()
    window = page.locator(t("auto-update-window"))
    window.fill("someday 04:00")
    page.locator(t("auto-update-save")).click()
    expect(page.locator(t("auto-update"))).to_contain_text("unknown day 'someday'")
    assert clone_server.api("GET", f"/api/instances/{NAME}/auto-update").json()["enabled"] is False
    window.fill("sat,sun 02:30-04:00")
    page.get_by_text("New versions too").click()
    page.locator(t("auto-update-save")).click()
    expect(page.locator(t("auto-update-next"))).to_be_visible()
    saved = clone_server.api("GET", f"/api/instances/{NAME}/auto-update").json()
    assert (saved["enabled"], saved["window"], saved["kind"]) == (
        True, "sat,sun 02:30-04:00", "version")


def test_clone_from_the_app_page_opens_the_running_copy(open_page: Any,
                                                         clone_server: Server) -> None:
    page = open_page(DESKTOP, "en-US")
    page.goto(f"{clone_server.url}/apps/{NAME}")
    page.locator(t("instance-clone")).click()
    page.locator(t("clone-name")).fill(NAME)  # its own name: refused, nothing happens
    page.locator(t("clone-start")).click()
    expect(page.locator(t("clone-dialog"))).to_contain_text("other than the original")
    page.locator(t("clone-name")).fill(COPY)
    page.locator(t("clone-start")).click()
    page.wait_for_url(re.compile(rf"/apps/{COPY}$"))
    expect(page.locator(t("instance-name"))).to_have_text(COPY)
    ops = clone_server.api("GET", "/api/operations", params={"instance": NAME}).json()["items"]
    assert ops[0]["kind"] == "clone" and ops[0]["target"] == COPY
    assert wait_operation(clone_server, ops[0]["id"])["state"] == "succeeded"
    expect(page.locator(t("instance-status"))).to_contain_text("Running")
    original = clone_server.api("GET", f"/api/instances/{NAME}").json()
    copy = clone_server.api("GET", f"/api/instances/{COPY}").json()
    assert copy["ports"][0]["host_port"] != original["ports"][0]["host_port"]
    assert original["status"] == "running"
