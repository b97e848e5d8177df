"""Settings after install in a real browser: the app page's settings form (a secret shown
masked), the preview with the compose diff and the services to recreate, applying it (the
container really gets the new value), the revision history and going back, at 1440 px in
English; the same section at 375 px in Chinese without sideways scrolling.

The module runs its own server (real engine).
"""

from __future__ import annotations

import json
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
    docker,
    ensure_instance,
    own_server,
    sign_in,
    t,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "tuner"
NAME = "set-web"
expect.set_options(timeout=WAIT)
errors: list[str] = []


@pytest.fixture(scope="module")
def settings_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own with an admin and one app installed."""
    with own_server(tmp_path_factory, "settings", USER) as srv:
        ensure_instance(srv, NAME, STORE_APP)
        yield srv


@pytest.fixture(scope="module")
def signed_in(browser: Any, settings_server: Server) -> dict[str, Any]:
    return sign_in(browser, settings_server, USER)


def greeting_in_container() -> str:
    out = docker("ps", "--filter", f"label=io.stackhub.instance={NAME}", "--format", "{{.ID}}")
    container = out.stdout.split()[0]
    env = json.loads(docker("inspect", "--format", "{{json .Config.Env}}", container).stdout)
    return next(e.partition("=")[2] for e in env if e.startswith("GREETING="))


def test_1_settings_form_preview_apply_and_go_back(open_page: Any, settings_server: Server,
                                                  shots: Path) -> None:
    srv = settings_server
    page = open_page(DESKTOP, "en-US")
    page.goto(f"{srv.url}/apps/{NAME}")
    card = page.locator(t("instance-settings"))
    expect(card).to_contain_text("Settings")
    greeting = card.locator(t("param-GREETING"))
    expect(greeting).to_have_value("hello")
    expect(card.locator(t("param-ADMIN_PASSWORD"))).to_have_value("")  # never shown
    expect(card.locator(t("settings-preview"))).to_be_disabled()
    greeting.fill("good morning")
    card.locator(t("settings-preview")).click()
    diff = card.locator(t("settings-diff"))
    expect(diff).to_contain_text("GREETING: hello → good morning")
    expect(diff).to_contain_text("+GREETING='good morning'")
    expect(diff.locator(t("settings-recreate"))).to_have_text("web")
    env = (srv.data / "instances" / NAME / ".env").read_text()
    secret = next(line.partition("=")[2].strip("'") for line in env.splitlines()
                  if line.startswith("ADMIN_PASSWORD="))
    assert len(secret) == 20 and secret not in page.content()
    page.screenshot(path=str(shots / "settings-preview-1440-en.png"), full_page=True)
    card.locator(t("settings-apply")).click()
    expect(card.locator(t("settings-progress"))).to_contain_text("Settings applied",
                                                                 timeout=120_000)
    assert greeting_in_container() == "good morning"
    expect(card.locator(t("settings-revisions"))).to_contain_text("#2")

    # back to revision 1: the preview shows the way back, then it is applied
    card.locator(t("revision-1")).click()
    expect(diff).to_contain_text("GREETING: good morning → hello")
    card.locator(t("settings-apply")).click()
    expect(card.locator(t("settings-revisions"))).to_contain_text("#3", timeout=120_000)
    assert greeting_in_container() == "hello"
    expect(greeting).to_have_value("hello")
    assert not errors, errors


def test_2_phone_chinese(open_page: Any, settings_server: Server, shots: Path) -> None:
    srv = settings_server
    page = open_page(PHONE, "zh-CN")
    page.goto(f"{srv.url}/apps/{NAME}")
    card = page.locator(t("instance-settings"))
    expect(card).to_contain_text("设置")
    expect(card).to_contain_text("修订历史")
    card.locator(t("param-GREETING")).fill("bonjour")
    card.locator(t("settings-preview")).click()
    expect(card.locator(t("settings-diff"))).to_contain_text("将重建")
    page.wait_for_timeout(300)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide at {PHONE['width']}px"
    page.screenshot(path=str(shots / "settings-375-zh.png"), full_page=True)
    assert not errors, errors
