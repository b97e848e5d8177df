"""The web console end to end in a real browser: setup, 2FA, store, install, logs, custom install.

Each test stands alone: fixtures make the accounts and instances it needs through the API (the
first admin included), and every test opens its own browser context, signed in from a saved
state, so a test that fails (or runs alone, or in another order) leaves the others unaffected.
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

from tests.e2e.conftest import (
    APP,
    DIST,
    IMAGE,
    STORE,
    Server,
    click_until,
    ensure_instance,
    free_port,
    remove_instance,
    signed_in_state,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "owner"
PASSWORD = "correct horse battery staple"
WAIT = 30_000  # ms
INSTALL_WAIT = 120_000
DESKTOP = {"width": 1440, "height": 900}
CUSTOM = "custom-e2e"
GREETING = "hello there"
errors: list[str] = []
expect.set_options(timeout=WAIT)


@pytest.fixture(scope="module")
def admin(server: Server) -> Server:
    """The shared server with its first admin (made through the API; the setup page is tested
    on a server of its own)."""
    if httpx.get(f"{server.url}/api/auth/status", timeout=30).json()["setup_required"]:
        made = server.api("POST", "/api/auth/setup", json={
            "setup_token": server.setup_token, "username": USER, "password": PASSWORD})
        assert made.status_code in (200, 201), made.text
    return server


@pytest.fixture(scope="module")
def signed_in(browser: Any, admin: Server) -> dict[str, Any]:
    """The admin's signed-in browser state (cookies)."""
    return signed_in_state(browser, admin.url, USER, PASSWORD, DESKTOP, WAIT)


def new_page(browser: Any, state: dict[str, Any] | None, **options: Any) -> tuple[Any, Any]:
    ctx = browser.new_context(**{"viewport": DESKTOP, "locale": "en-US", **options},
                              storage_state=state)
    ctx.set_default_timeout(WAIT)
    page = ctx.new_page()
    page.on("pageerror", lambda err: errors.append(str(err)))
    return ctx, page


@pytest.fixture
def page(browser: Any, signed_in: dict[str, Any], request: pytest.FixtureRequest,
         shots: Path) -> Iterator[Any]:
    """A page of its own, signed in as the admin; screenshot if the test fails."""
    ctx, page = new_page(browser, signed_in, accept_downloads=True)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        page.screenshot(path=str(shots / f"FAILED-{request.node.name}.png"), full_page=True)
    ctx.close()


@pytest.fixture
def anonymous(browser: Any, request: pytest.FixtureRequest, shots: Path) -> Iterator[Any]:
    """A page of its own, signed out."""
    ctx, page = new_page(browser, None)
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        page.screenshot(path=str(shots / f"FAILED-{request.node.name}.png"), full_page=True)
    ctx.close()


def catalog_source() -> dict[str, str]:
    return {"kind": "catalog", "ref": f"{STORE}/{APP}"}


@pytest.fixture
def hello_web(admin: Server) -> dict[str, Any]:
    """The store app installed and running, greeting "hello there"."""
    found = admin.api("GET", f"/api/instances/{APP}")
    if found.status_code == 200 and found.json()["parameters"].get("GREETING") != GREETING:
        remove_instance(admin, APP)
    return ensure_instance(admin, APP, catalog_source(), {"GREETING": GREETING})


def app_url(instance: dict[str, Any]) -> str:
    urls: list[str] = instance["urls"]
    assert urls, instance
    return urls[0]


@pytest.fixture
def custom_app(admin: Server) -> dict[str, Any]:
    """A custom compose app installed and running."""
    compose = (f"services:\n  web:\n    image: {IMAGE}\n    ports: [\"{free_port()}:80\"]\n"
               "    stop_grace_period: 1s\n")
    return ensure_instance(admin, CUSTOM, {"kind": "compose", "compose": compose})


def account(server: Server, name: str, role: str = "member") -> None:
    """Make an account unless it exists (tests may run again on the same server)."""
    made = server.api("POST", "/api/users", json={"username": name, "password": PASSWORD,
                                                  "role": role})
    assert made.status_code in (200, 201, 409), made.text


def enrol_totp(server: Server, name: str) -> pyotp.TOTP:
    """Sign in as `name` over HTTP and turn TOTP on; return the authenticator."""
    with httpx.Client(base_url=server.url, timeout=30,
                      headers={"Origin": server.url}) as client:
        login = client.post("/api/auth/login", json={"username": name, "password": PASSWORD})
        assert login.status_code == 200, login.text
        csrf = {"X-CSRF-Token": client.cookies["stackhub_csrf"]}
        enrolment = client.post("/api/auth/totp/enroll", headers=csrf)
        assert enrolment.status_code == 200, enrolment.text
        totp = pyotp.TOTP(enrolment.json()["secret"])
        confirmed = client.post("/api/auth/totp/confirm", headers=csrf,
                                json={"code": totp.now()})
        assert confirmed.status_code == 200, confirmed.text
    return totp


def t(name: str) -> str:
    return f'[data-test="{name}"]'


def shot(page: Any, shots: Path, name: str, *, full: bool = False) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=full, animations="disabled")


def test_setup_creates_the_first_admin(browser: Any, tmp_path_factory: pytest.TempPathFactory,
                                       shots: Path) -> None:
    if not DIST.is_file():
        pytest.fail("the web console is not built: run scripts/build-web (scripts/test does)")
    fresh = Server(tmp_path_factory.mktemp("e2e-setup") / "data")
    fresh.start()
    ctx, page = new_page(browser, None)
    try:
        page.goto(fresh.url)
        page.wait_for_url(re.compile(r"/setup$"))
        page.fill(t("setup-token"), fresh.setup_token)
        page.fill(t("setup-username"), USER)
        page.fill(t("setup-password"), PASSWORD)
        page.fill(t("setup-confirm"), PASSWORD)
        shot(page, shots, "01-setup")
        click_until(page, t("setup-submit"), lambda: "/account" in page.url)
        page.wait_for_url(re.compile(r"/account\?welcome=1"))
        expect(page.locator(t("totp-card"))).to_be_visible()
        assert fresh.api("GET", "/api/users").json()[0]["name"] == USER
    finally:
        ctx.close()
        fresh.stop()


def test_totp_enrolment_shows_qr_and_recovery_codes(browser: Any, admin: Server,
                                                    shots: Path) -> None:
    name = f"enrol-{int(time.time() * 1000) % 100000}"  # a fresh account each run
    account(admin, name)
    state = signed_in_state(browser, admin.url, name, PASSWORD, DESKTOP, WAIT)
    ctx, page = new_page(browser, state)
    try:
        page.goto(f"{admin.url}/account")
        click_until(page, t("totp-start"), page.locator(t("totp-qr")))
        qr = page.wait_for_selector(t("totp-qr"))
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=qr)
        secret = page.inner_text(t("totp-secret")).strip()
        assert re.fullmatch(r"[A-Z2-7]{16,}", secret)
        shot(page, shots, "02-totp-enrol")
        page.fill(t("totp-confirm-code"), pyotp.TOTP(secret).now())
        click_until(page, t("totp-confirm"), page.locator(t("recovery-codes")))
        codes = page.wait_for_selector(t("recovery-codes"))
        assert len(codes.query_selector_all("li")) >= 8
        shot(page, shots, "03-recovery-codes")
        page.click(t("recovery-saved"))
        users = {u["name"]: u for u in admin.api("GET", "/api/users").json()}
        assert users[name]["totp_enabled"] is True
    finally:
        ctx.close()


def test_sign_in_with_password_and_totp(anonymous: Any, admin: Server, shots: Path) -> None:
    name = f"tina-{int(time.time() * 1000) % 100000}"
    account(admin, name)
    totp = enrol_totp(admin, name)
    page = anonymous
    page.goto(f"{admin.url}/login")
    page.fill(t("login-username"), name)
    page.fill(t("login-password"), "wrong password")
    # a readable error, not a blank page
    wrong = page.locator(f'{t("error")}:has-text("Wrong username or password")')
    click_until(page, t("login-submit"), wrong)
    page.fill(t("login-password"), PASSWORD)
    shot(page, shots, "04-sign-in")
    click_until(page, t("login-submit"), page.locator(t("login-code")))
    # the enrolment used this time step's code; the next step's is valid (±1) and unused
    page.fill(t("login-code"), totp.at(time.time() + 30))
    shot(page, shots, "05-sign-in-totp")
    click_until(page, t("login-verify"), lambda: "/login" not in page.url)
    page.wait_for_url(re.compile(r"/$"))
    expect(page.locator(t("error"))).to_have_count(0)


def test_sign_out(browser: Any, admin: Server) -> None:
    state = signed_in_state(browser, admin.url, USER, PASSWORD, DESKTOP, WAIT)  # its own session
    ctx, page = new_page(browser, state)
    try:
        page.goto(f"{admin.url}/settings")
        page.click('button[aria-label="Sign out"]')
        page.wait_for_url(re.compile(r"/login"))
        page.goto(f"{admin.url}/apps")  # the session is gone: back to the sign-in page
        page.wait_for_url(re.compile(r"/login"))
        cookie = next(c["value"] for c in state["cookies"] if c["name"] == "stackhub_session")
        ended = httpx.get(f"{admin.url}/api/auth/sessions", timeout=30,
                          cookies={"stackhub_session": cookie})
        assert ended.status_code == 401  # ended on the server, not only in the page
    finally:
        ctx.close()


def test_dashboard_shows_live_metrics(page: Any, admin: Server, shots: Path) -> None:
    for item in admin.api("GET", "/api/instances").json():  # an empty dashboard first
        remove_instance(admin, item["name"])
    samples: list[str] = []  # metric samples pushed over the websocket
    page.on("websocket", lambda ws: ws.on(
        "framereceived", lambda frame: samples.append(frame) if '"cpu"' in str(frame) else None))
    page.goto(admin.url)
    page.wait_for_selector(t("metrics"))
    expect(page.locator(t("metric-value"))).to_have_count(4)
    page.wait_for_selector('[data-test="live-state"].open')
    seen, deadline = len(samples), time.monotonic() + WAIT / 1000
    while len(samples) < seen + 2:  # two more samples over the websocket: charts move
        assert time.monotonic() < deadline, f"{len(samples) - seen} samples in {WAIT} ms"
        page.wait_for_timeout(100)
    values = page.locator(t("metric-value")).all_inner_texts()
    assert all(re.search(r"\d", v) for v in values), values
    expect(page.locator(t("empty"))).to_be_visible()  # nothing installed
    shot(page, shots, "06-dashboard-empty")


def test_store_search_as_you_type_and_filters(page: Any, admin: Server, shots: Path) -> None:
    page.goto(f"{admin.url}/store")
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
    page.goto(f"{admin.url}/store")
    page.wait_for_selector(t("app-cards"))
    shot(page, shots, "08-store")


def test_app_page_renders_markdown_safely(page: Any, admin: Server, shots: Path) -> None:
    page.goto(f"{admin.url}/store")
    page.fill(t("store-search"), "hello")
    page.click(t(f"app-card-{STORE}/{APP}"))
    page.wait_for_url(re.compile(rf"/store/{STORE}/{APP}$"))
    expect(page.locator(t("app-title"))).to_have_text("Hello Web")
    page.wait_for_selector(".markdown h1")
    html = page.inner_html(".markdown")
    assert "<strong>one page</strong>" in html
    # raw HTML from the store is shown as text, never as elements
    assert page.locator(".markdown script, .markdown img, .markdown [onerror]").count() == 0
    assert "&lt;script&gt;" in html
    assert page.evaluate("window.__pwned") is None
    shot(page, shots, "09-app-page")


def test_install_with_parameters_and_live_progress(page: Any, admin: Server,
                                                   shots: Path) -> None:
    remove_instance(admin, APP)
    page.goto(f"{admin.url}/store/{STORE}/{APP}")
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
    expect(page.locator("text=Lowercase letters only").first).to_be_visible()
    page.fill(t("param-GREETING"), GREETING)
    shot(page, shots, "10-install-form")
    click_until(page, t("install-review"), page.locator(t("install-review-step")))
    click_until(page, t("install-confirm"), page.locator(t("install-progress")))
    shot(page, shots, "11-install-progress")
    page.wait_for_selector(t("install-done"), timeout=INSTALL_WAIT)
    assert page.locator('[data-test="install-progress"][data-state="succeeded"]').is_visible()
    shot(page, shots, "12-install-done")
    href = page.get_attribute(t("install-open"), "href")
    assert href and href.startswith("http://")
    assert "hello" in httpx.get(href, timeout=10).text  # "Open" leads to the running app
    page.click("text=View app")
    page.wait_for_url(re.compile(rf"/apps/{APP}$"))
    assert admin.api("GET", f"/api/instances/{APP}").json()["parameters"]["GREETING"] == GREETING


def test_instance_page_and_logs(page: Any, admin: Server, hello_web: dict[str, Any],
                                shots: Path) -> None:
    page.goto(f"{admin.url}/apps/{APP}")
    page.wait_for_selector(f'{t("instance-status")}[data-status="running"]')
    expect(page.locator(t("instance-parameters"))).to_be_visible()
    expect(page.locator(t("instance-parameters"))).to_contain_text("********")  # secrets hidden
    shot(page, shots, "13-instance")
    httpx.get(app_url(hello_web), timeout=10)  # a request for httpd -v to log
    page.click('.n-tabs-tab:has-text("Logs")')
    page.wait_for_selector(f'.line:has-text("greeting={GREETING}")')
    page.fill(t("logs-search"), "greeting")
    page.wait_for_selector(".logs mark")
    shot(page, shots, "14-logs")
    with page.expect_download() as download:
        page.click(t("logs-download"))
    assert download.value.suggested_filename.endswith(".log")


def test_dashboard_launcher_opens_the_app(page: Any, admin: Server, hello_web: dict[str, Any],
                                          shots: Path) -> None:
    page.goto(admin.url)
    tile = page.locator(t(f"tile-{APP}"))
    tile.wait_for()
    assert tile.get_attribute("href") == app_url(hello_web)
    assert tile.get_attribute("target") == "_blank"
    expect(page.locator(t("metric-value"))).to_have_count(4)
    shot(page, shots, "15-dashboard")


def test_stop_and_remove_keeping_data(page: Any, admin: Server, hello_web: dict[str, Any],
                                      shots: Path) -> None:
    page.goto(f"{admin.url}/apps/{APP}")
    page.wait_for_selector(f'{t("instance-status")}[data-status="running"]')
    click_until(page, t("instance-stop"),
                page.locator(f'{t("instance-status")}[data-status="stopped"]'))
    page.click(t("instance-remove"))
    dialog = page.wait_for_selector(t("remove-dialog"))
    assert page.locator(f'{t("remove-keep")} input').is_checked()  # keeping data is the default
    shot(page, shots, "16-remove-dialog")
    assert dialog.query_selector(t("remove-confirm")) is not None
    click_until(page, f'{t("remove-dialog")} {t("remove-confirm")}',
                lambda: page.url.endswith("/apps"))
    deadline = time.monotonic() + 60
    while admin.api("GET", f"/api/instances/{APP}").status_code != 404:
        assert time.monotonic() < deadline, "the instance was not removed"
        time.sleep(0.5)
    assert (admin.data / "appdata" / APP).is_dir()  # data kept


def test_custom_install_of_a_compose_file(page: Any, admin: Server, shots: Path) -> None:
    for name in (CUSTOM, "risky-e2e"):
        remove_instance(admin, name)
    # a risky file first: the admin must accept its risks explicitly
    page.goto(f"{admin.url}/custom")
    risky = f"services:\n  root:\n    image: {IMAGE}\n    privileged: true\n"
    page.fill(t("custom-compose"), risky)
    page.click(t("custom-next"))
    page.fill(t("install-name"), "risky-e2e")
    click_until(page, t("install-review"), page.locator(t("install-risks")))
    risks = page.wait_for_selector(t("install-risks"))
    assert "privileged" in risks.inner_text()
    confirm = page.locator(t("install-confirm"))
    expect(confirm).to_be_disabled()
    page.click(t("install-accept"))
    expect(confirm).to_be_enabled()
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
    page.fill(t("install-name"), CUSTOM)
    click_until(page, t("install-review"), page.locator(t("install-review-step")))
    expect(page.locator(t("install-review-step"))).to_contain_text(str(port))
    click_until(page, t("install-confirm"), page.locator(t("install-progress")))
    page.wait_for_selector(t("install-done"), timeout=INSTALL_WAIT)
    assert "hello" in httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text
    page.click("text=View app")
    page.wait_for_url(re.compile(rf"/apps/{CUSTOM}$"))
    page.wait_for_selector(f'{t("instance-status")}[data-status="running"]')


def test_containers_view_marks_stackhub_containers(page: Any, admin: Server,
                                                   custom_app: dict[str, Any],
                                                   shots: Path) -> None:
    page.goto(f"{admin.url}/containers")
    table = page.wait_for_selector(t("containers-table"))
    page.wait_for_selector(f'.n-data-table-td:has-text("StackHub · {CUSTOM}")')
    assert CUSTOM in table.inner_text()
    shot(page, shots, "18-containers")
    page.goto(f"{admin.url}/settings/stores")
    page.wait_for_selector(f'.n-data-table-td:has-text("{STORE}")')
    shot(page, shots, "19-settings-stores")


def test_switch_to_chinese(page: Any, admin: Server, shots: Path) -> None:
    page.goto(admin.url)
    page.click(t("language-button"))
    page.click('.n-dropdown-option:has-text("简体中文")')
    page.wait_for_selector("html[lang='zh-CN']")
    nav = page.inner_text(".n-layout-sider")
    for text in ("仪表盘", "应用商店", "已安装应用", "设置"):
        assert text in nav, nav
    page.wait_for_selector("h1:has-text('仪表盘')")
    assert "Dashboard" not in page.inner_text("main, .n-layout-content")
    shot(page, shots, "20-dashboard-zh")
    page.goto(f"{admin.url}/store?q=hello")
    page.wait_for_selector(f'{t(f"app-card-{STORE}/{APP}")}:has-text("你好网页")')
    shot(page, shots, "21-store-zh")
    page.click(t("language-button"))
    page.click('.n-dropdown-option:has-text("English")')
    page.wait_for_selector("html[lang='en']")


def test_dark_theme(page: Any, admin: Server, shots: Path) -> None:
    page.goto(f"{admin.url}/apps")
    page.click(t("theme-button"))
    page.wait_for_selector("html[data-theme='dark']")
    shot(page, shots, "22-apps-dark")
    page.click(t("theme-button"))
    page.wait_for_selector("html[data-theme='light']")


def test_member_sees_only_granted_apps(browser: Any, admin: Server, custom_app: dict[str, Any],
                                       shots: Path) -> None:
    account(admin, "mia")
    granted = admin.api("PUT", "/api/users/mia/instances", json={"instances": [CUSTOM]})
    assert granted.status_code == 200, granted.text
    state = signed_in_state(browser, admin.url, "mia", PASSWORD, DESKTOP, WAIT)
    ctx, page = new_page(browser, state)
    try:
        page.goto(admin.url)
        page.locator(t(f"tile-{CUSTOM}")).wait_for()
        nav = page.inner_text(".n-layout-sider")
        assert "Installed apps" in nav
        assert "App store" not in nav and "Containers" not in nav
        assert page.locator(t("metrics")).count() == 0  # host metrics are for admins
        page.goto(f"{admin.url}/containers")
        page.wait_for_url(re.compile(r"/$"))  # admin pages send members home
        shot(page, shots, "25-member-dashboard")
    finally:
        ctx.close()


def test_phone_width_dashboard(browser: Any, signed_in: dict[str, Any], admin: Server,
                               custom_app: dict[str, Any], shots: Path) -> None:
    phone, page = new_page(browser, signed_in, viewport={"width": 375, "height": 812},
                           is_mobile=True, has_touch=True, device_scale_factor=2)
    try:
        page.goto(admin.url)
        expect(page.locator(t("metric-value"))).to_have_count(4)
        page.locator(t(f"tile-{CUSTOM}")).wait_for()
        expect(page.locator(t("menu-button"))).to_be_visible()
        assert page.locator(".n-layout-sider").count() == 0
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than the phone"
        shot(page, shots, "23-dashboard-phone", full=True)
        page.click(t("menu-button"))
        page.wait_for_selector(".n-drawer .n-menu")
        shot(page, shots, "24-menu-phone")
    finally:
        phone.close()


def test_no_script_errors() -> None:
    assert errors == []
