"""The web console end to end in a real browser: setup, 2FA, store, install, logs, custom install.

The tests run in order and share one signed-in browser context, like one user's session.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import APP, IMAGE, STORE, Server, free_port

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "owner"
PASSWORD = "correct horse battery staple"
WAIT = 30_000  # ms
INSTALL_WAIT = 120_000
state: dict[str, Any] = {}
expect.set_options(timeout=WAIT)


@pytest.fixture(scope="module")
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-US",
                              accept_downloads=True)
    ctx.set_default_timeout(WAIT)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def page(context: Any) -> Iterator[Any]:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    state["page_errors"] = errors
    yield page
    page.close()


@pytest.fixture(autouse=True)
def screenshot_on_failure(request: pytest.FixtureRequest, page: Any, shots: Path) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        page.screenshot(path=str(shots / f"FAILED-{request.node.name}.png"), full_page=True)


def t(name: str) -> str:
    return f'[data-test="{name}"]'


def shot(page: Any, shots: Path, name: str, *, full: bool = False) -> None:
    page.wait_for_timeout(250)  # let transitions settle
    page.screenshot(path=str(shots / f"{name}.png"), full_page=full)


def test_setup_creates_the_first_admin(page: Any, server: Server, shots: Path) -> None:
    page.goto(server.url)
    page.wait_for_url(re.compile(r"/setup$"))
    page.fill(t("setup-token"), server.setup_token)
    page.fill(t("setup-username"), USER)
    page.fill(t("setup-password"), PASSWORD)
    page.fill(t("setup-confirm"), PASSWORD)
    shot(page, shots, "01-setup")
    page.click(t("setup-submit"))
    page.wait_for_url(re.compile(r"/account\?welcome=1"))
    assert page.locator(t("totp-card")).is_visible()


def test_totp_enrolment_shows_qr_and_recovery_codes(page: Any, shots: Path) -> None:
    page.click(t("totp-start"))
    qr = page.wait_for_selector(t("totp-qr"))
    page.wait_for_timeout(200)
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0"), "the QR code did not load"
    secret = page.inner_text(t("totp-secret")).strip()
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret)
    state["totp"] = pyotp.TOTP(secret)
    shot(page, shots, "02-totp-enrol")
    page.fill(t("totp-confirm-code"), state["totp"].now())
    page.click(t("totp-confirm"))
    codes = page.wait_for_selector(t("recovery-codes"))
    assert len(codes.query_selector_all("li")) >= 8
    shot(page, shots, "03-recovery-codes")
    page.click(t("recovery-saved"))


def test_sign_in_with_password_and_totp(page: Any, server: Server, shots: Path) -> None:
    page.goto(f"{server.url}/settings")
    page.click('button[aria-label="Sign out"]')
    page.wait_for_url(re.compile(r"/login"))
    page.fill(t("login-username"), USER)
    page.fill(t("login-password"), "wrong password")
    page.click(t("login-submit"))
    assert page.wait_for_selector(t("error")).is_visible()  # a readable error, not a blank page
    page.fill(t("login-password"), PASSWORD)
    shot(page, shots, "04-sign-in")
    page.click(t("login-submit"))
    page.wait_for_selector(t("login-code"))
    # the enrolment used this time step's code; the next step's is valid (±1) and unused
    page.fill(t("login-code"), state["totp"].at(time.time() + 30))
    shot(page, shots, "05-sign-in-totp")
    page.click(t("login-verify"))
    page.wait_for_url(re.compile(r"/$"))


def test_dashboard_shows_live_metrics(page: Any, server: Server, shots: Path) -> None:
    page.goto(server.url)
    page.wait_for_selector(t("metrics"))
    expect(page.locator(t("metric-value"))).to_have_count(4)
    page.wait_for_selector('[data-test="live-state"].open')
    page.wait_for_timeout(4500)  # two more samples over the websocket: charts move
    values = page.locator(t("metric-value")).all_inner_texts()
    assert all(re.search(r"\d", v) for v in values), values
    assert page.locator(t("empty")).is_visible()  # nothing installed yet
    shot(page, shots, "06-dashboard-empty")


def test_store_search_as_you_type_and_filters(page: Any, server: Server, shots: Path) -> None:
    page.goto(f"{server.url}/store")
    page.wait_for_selector(t("app-cards"))
    assert page.locator('[data-test^="app-card-"]').count() > 1  # the official store too
    page.locator(t("store-search")).press_sequentially("hello w", delay=40)
    card = page.locator(t(f"app-card-{STORE}/{APP}"))
    card.wait_for()
    expect(page.locator('[data-test^="app-card-"]')).to_have_count(1)
    assert "q=hello" in page.url
    shot(page, shots, "07-store-search")
    page.fill(t("store-search"), "")
    page.click(t("filter-store"))
    page.click(f'.n-base-select-option:has-text("{STORE}")')
    expect(page.locator('[data-test^="app-card-"]')).to_have_count(1)
    assert card.is_visible()
    page.goto(f"{server.url}/store")
    page.wait_for_selector(t("app-cards"))
    shot(page, shots, "08-store")


def test_app_page_renders_markdown_safely(page: Any, server: Server, shots: Path) -> None:
    page.fill(t("store-search"), "hello")
    page.click(t(f"app-card-{STORE}/{APP}"))
    page.wait_for_url(re.compile(rf"/store/{STORE}/{APP}$"))
    assert page.inner_text(t("app-title")) == "Hello Web"
    page.wait_for_selector(".markdown h1")
    html = page.inner_html(".markdown")
    assert "<strong>one page</strong>" in html
    # raw HTML from the store is shown as text, never as elements
    assert page.locator(".markdown script, .markdown img, .markdown [onerror]").count() == 0
    assert "&lt;script&gt;" in html
    assert page.evaluate("window.__pwned") is None
    shot(page, shots, "09-app-page")


def test_install_with_parameters_and_live_progress(page: Any, server: Server,
                                                   shots: Path) -> None:
    page.click(t("install-button"))
    name = page.locator(t("install-name"))
    expect(name).to_have_value(APP)
    secret = page.locator(t("param-ADMIN_PASSWORD"))
    expect(secret).to_have_value(re.compile(r"^[A-Za-z0-9]{20}$"))
    assert secret.get_attribute("type") == "password"
    field = "xpath=ancestor::div[contains(concat(' ', @class, ' '), ' n-input ')][1]"
    secret.locator(field).locator(".n-input__eye").click()
    assert secret.get_attribute("type") == "text"  # revealed
    assert page.locator(t("param-WEB_PORT")).input_value().isdigit()
    page.fill(t("param-GREETING"), "Hello!")
    page.click(t("install-review"))
    assert page.locator("text=Lowercase letters only").first.is_visible()
    page.fill(t("param-GREETING"), "hello there")
    shot(page, shots, "10-install-form")
    page.click(t("install-review"))
    page.wait_for_selector(t("install-review-step"))
    page.click(t("install-confirm"))
    page.wait_for_selector(t("install-progress"))
    shot(page, shots, "11-install-progress")
    page.wait_for_selector(t("install-done"), timeout=INSTALL_WAIT)
    assert page.locator('[data-test="install-progress"][data-state="succeeded"]').is_visible()
    shot(page, shots, "12-install-done")
    href = page.get_attribute(t("install-open"), "href")
    assert href and href.startswith("http://")
    assert "hello" in httpx.get(href, timeout=10).text  # "Open" leads to the running app
    state["app_url"] = href
    page.click("text=View app")
    page.wait_for_url(re.compile(rf"/apps/{APP}$"))


def test_instance_page_and_logs(page: Any, shots: Path) -> None:
    page.wait_for_selector(f'{t("instance-status")}[data-status="running"]')
    assert page.locator(t("instance-parameters")).is_visible()
    assert "********" in page.inner_text(t("instance-parameters"))  # secrets stay hidden
    shot(page, shots, "13-instance")
    httpx.get(state["app_url"], timeout=10)  # a request for httpd -v to log
    page.click('.n-tabs-tab:has-text("Logs")')
    page.wait_for_selector('.line:has-text("greeting=hello there")')
    page.fill(t("logs-search"), "greeting")
    page.wait_for_selector(".logs mark")
    shot(page, shots, "14-logs")
    with page.expect_download() as download:
        page.click(t("logs-download"))
    assert download.value.suggested_filename.endswith(".log")


def test_dashboard_launcher_opens_the_app(page: Any, server: Server, shots: Path) -> None:
    page.goto(server.url)
    tile = page.locator(t(f"tile-{APP}"))
    tile.wait_for()
    assert tile.get_attribute("href") == state["app_url"]
    assert tile.get_attribute("target") == "_blank"
    expect(page.locator(t("metric-value"))).to_have_count(4)
    shot(page, shots, "15-dashboard")


def test_stop_and_remove_keeping_data(page: Any, server: Server, shots: Path) -> None:
    page.goto(f"{server.url}/apps/{APP}")
    page.click(t("instance-stop"))
    page.wait_for_selector(f'{t("instance-status")}[data-status="stopped"]')
    page.click(t("instance-remove"))
    dialog = page.wait_for_selector(t("remove-dialog"))
    assert page.locator(f'{t("remove-keep")} input').is_checked()  # keeping data is the default
    shot(page, shots, "16-remove-dialog")
    dialog.query_selector(t("remove-confirm")).click()  # type: ignore[union-attr]
    page.wait_for_url(re.compile(r"/apps$"))
    deadline = time.monotonic() + 60
    while server.api("GET", f"/api/instances/{APP}").status_code != 404:
        assert time.monotonic() < deadline, "the instance was not removed"
        time.sleep(0.5)
    assert (server.data / "appdata" / APP).is_dir()  # data kept


def test_custom_install_of_a_compose_file(page: Any, server: Server, shots: Path) -> None:
    # a risky file first: the admin must accept its risks explicitly
    page.goto(f"{server.url}/custom")
    risky = f"services:\n  root:\n    image: {IMAGE}\n    privileged: true\n"
    page.fill(t("custom-compose"), risky)
    page.click(t("custom-next"))
    page.fill(t("install-name"), "risky-e2e")
    page.click(t("install-review"))
    risks = page.wait_for_selector(t("install-risks"))
    assert "privileged" in risks.inner_text()
    confirm = page.locator(t("install-confirm"))
    assert confirm.is_disabled()
    page.click(t("install-accept"))
    assert confirm.is_enabled()
    shot(page, shots, "17-custom-install-risks")
    page.click("button:has-text('Back')")
    page.click("button:has-text('Cancel')")

    port = free_port()
    compose = (f"services:\n  web:\n    image: {IMAGE}\n    ports: [\"{port}:80\"]\n"
               "    stop_grace_period: 1s\n")
    page.fill(t("custom-compose"), compose)
    shot(page, shots, "17-custom-install-compose")
    page.click(t("custom-next"))
    page.wait_for_selector(t("install-name"))
    page.fill(t("install-name"), "custom-e2e")
    page.click(t("install-review"))
    page.wait_for_selector(t("install-review-step"))
    assert str(port) in page.inner_text(t("install-review-step"))
    page.click(t("install-confirm"))
    page.wait_for_selector(t("install-done"), timeout=INSTALL_WAIT)
    assert "hello" in httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text
    page.click("text=View app")
    page.wait_for_url(re.compile(r"/apps/custom-e2e$"))
    page.wait_for_selector(f'{t("instance-status")}[data-status="running"]')


def test_containers_view_marks_stackhub_containers(page: Any, server: Server,
                                                   shots: Path) -> None:
    page.goto(f"{server.url}/containers")
    table = page.wait_for_selector(t("containers-table"))
    page.wait_for_selector('.n-data-table-td:has-text("StackHub · custom-e2e")')
    assert "custom-e2e" in table.inner_text()
    shot(page, shots, "18-containers")
    page.goto(f"{server.url}/settings/stores")
    page.wait_for_selector(f'.n-data-table-td:has-text("{STORE}")')
    shot(page, shots, "19-settings-stores")


def test_switch_to_chinese(page: Any, server: Server, shots: Path) -> None:
    page.goto(server.url)
    page.click(t("language-button"))
    page.click('.n-dropdown-option:has-text("简体中文")')
    page.wait_for_selector("html[lang='zh-CN']")
    nav = page.inner_text(".n-layout-sider")
    for text in ("仪表盘", "应用商店", "已安装应用", "设置"):
        assert text in nav, nav
    page.wait_for_selector("h1:has-text('仪表盘')")
    assert "Dashboard" not in page.inner_text("main, .n-layout-content")
    shot(page, shots, "20-dashboard-zh")
    page.goto(f"{server.url}/store?q=hello")
    page.wait_for_selector(f'{t(f"app-card-{STORE}/{APP}")}:has-text("你好网页")')
    shot(page, shots, "21-store-zh")
    page.click(t("language-button"))
    page.click('.n-dropdown-option:has-text("English")')
    page.wait_for_selector("html[lang='en']")


def test_dark_theme(page: Any, server: Server, shots: Path) -> None:
    page.goto(f"{server.url}/apps")
    page.click(t("theme-button"))
    page.wait_for_selector("html[data-theme='dark']")
    shot(page, shots, "22-apps-dark")
    page.click(t("theme-button"))
    page.wait_for_selector("html[data-theme='light']")


def test_member_sees_only_granted_apps(browser: Any, server: Server, shots: Path) -> None:
    made = server.api("POST", "/api/users", json={"username": "mia", "password": PASSWORD,
                                                  "role": "member"})
    assert made.status_code in (200, 201), made.text
    granted = server.api("PUT", "/api/users/mia/instances", json={"instances": ["custom-e2e"]})
    assert granted.status_code == 200, granted.text
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        page = ctx.new_page()
        page.set_default_timeout(WAIT)
        page.goto(f"{server.url}/login")
        page.fill(t("login-username"), "mia")
        page.fill(t("login-password"), PASSWORD)
        page.click(t("login-submit"))
        page.wait_for_url(re.compile(r"/$"))
        page.locator(t("tile-custom-e2e")).wait_for()
        nav = page.inner_text(".n-layout-sider")
        assert "Installed apps" in nav
        assert "App store" not in nav and "Containers" not in nav
        assert page.locator(t("metrics")).count() == 0  # host metrics are for admins
        page.goto(f"{server.url}/containers")
        page.wait_for_url(re.compile(r"/$"))  # admin pages send members home
        shot(page, shots, "25-member-dashboard")
    finally:
        ctx.close()


def test_phone_width_dashboard(browser: Any, context: Any, server: Server, shots: Path) -> None:
    phone = browser.new_context(viewport={"width": 375, "height": 812}, is_mobile=True,
                                has_touch=True, device_scale_factor=2,
                                storage_state=context.storage_state())
    try:
        page = phone.new_page()
        page.set_default_timeout(WAIT)
        page.goto(server.url)
        expect(page.locator(t("metric-value"))).to_have_count(4)
        page.locator(t("tile-custom-e2e")).wait_for()
        assert page.locator(t("menu-button")).is_visible()
        assert page.locator(".n-layout-sider").count() == 0
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than the phone"
        shot(page, shots, "23-dashboard-phone", full=True)
        page.click(t("menu-button"))
        page.wait_for_selector(".n-drawer .n-menu")
        shot(page, shots, "24-menu-phone")
    finally:
        phone.close()


def test_no_script_errors(page: Any) -> None:
    assert state["page_errors"] == []
