"""Settings after install in a real browser: the app page's settings form (a secret shown
masked), the preview with the compose diff and the services to recreate, applying it (the
container really gets the new value), the revision history and going back, at 1440 px in
English; the same section at 375 px in Chinese without sideways scrolling.

The module runs its own server (real engine).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    APP,
    DIST,
    STORE,
    Server,
    docker,
    free_port,
    remove_instances,
    signed_in_state,
    write_store,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "tuner"
PASSWORD = "correct horse battery staple"
WAIT = 30_000  # ms
NAME = "set-web"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 375, "height": 812}
expect.set_options(timeout=WAIT)
errors: list[str] = []


def t(name: str) -> str:
    return f'[data-test="{name}"]'


@pytest.fixture(scope="module")
def settings_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own with an admin and one app installed."""
    if not DIST.is_file():
        pytest.fail("the web console is not built: run scripts/build-web (scripts/test does)")
    base = tmp_path_factory.mktemp("e2e-settings")
    srv = Server(base / "data")
    srv.start()
    try:
        made = srv.api("POST", "/api/auth/setup", json={
            "setup_token": srv.setup_token, "username": USER, "password": PASSWORD})
        assert made.status_code in (200, 201), made.text
        store = write_store(base / "store", free_port())
        added = srv.api("POST", "/api/stores", json={"name": STORE, "source": str(store),
                                                     "local": True})
        assert added.status_code == 201, added.text
        accepted = srv.api("POST", "/api/instances", json={
            "source": {"kind": "catalog", "ref": f"{STORE}/{APP}"}, "name": NAME})
        assert accepted.status_code == 202, accepted.text
        op_id = accepted.json()["operation"]["id"]
        deadline = time.monotonic() + 120
        while srv.api("GET", f"/api/operations/{op_id}").json()["state"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert srv.api("GET", f"/api/operations/{op_id}").json()["state"] == "succeeded"
        yield srv
    finally:
        remove_instances(srv)
        srv.stop()


@pytest.fixture(scope="module")
def signed_in(browser: Any, settings_server: Server) -> dict[str, Any]:
    return signed_in_state(browser, settings_server.url, USER, PASSWORD, DESKTOP, WAIT)


@pytest.fixture
def open_page(browser: Any, signed_in: dict[str, Any], request: pytest.FixtureRequest,
              shots: Path) -> Iterator[Any]:
    contexts: list[Any] = []
    pages: list[Any] = []

    def make(viewport: dict[str, int], locale: str) -> Any:
        phone = viewport["width"] < 600
        ctx = browser.new_context(viewport=viewport, locale=locale, storage_state=signed_in,
                                  is_mobile=phone, has_touch=phone,
                                  device_scale_factor=2 if phone else 1)
        ctx.set_default_timeout(WAIT)
        contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda err: errors.append(str(err)))
        pages.append(page)
        return page

    yield make
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed and pages:
        pages[-1].screenshot(path=str(shots / f"FAILED-{request.node.name}.png"))
    for ctx in contexts:
        ctx.close()


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
