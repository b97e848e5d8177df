"""Console defects a new user tripped over (issue 17), each checked in a real browser.

English and Chinese wherever text is involved; 1366 px and 375 px where the layout matters. The
module runs its own server (its own data root, first admin, store and instances), like
test_activity.py, so it neither depends on nor disturbs the other modules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    IMAGE,
    PASSWORD,
    PHONE,
    STORE_APP,
    WAIT,
    Server,
    click_until,
    free_port,
    install_and_wait,
    own_server,
    sign_in,
    t,
    wait_operation,
    write_store,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "keeper"
OP_WAIT = 120  # s
GOOD = "defects-web"  # a store app with labelled parameters
QUIET = "defects-quiet"  # a custom app that prints nothing, with ports, environment and volumes
BROKEN = "defects-broken"  # an install whose image cannot be pulled
UNREACHABLE = "registry.invalid/stackhub/nothing:1"  # a registry whose name does not resolve
DESKTOP = {"width": 1366, "height": 900}
LOCALES = pytest.mark.parametrize("locale", ["en-US", "zh-CN"], ids=["en", "zh"])
expect.set_options(timeout=WAIT)
errors: list[str] = []
console: list[str] = []  # the browser's errors and failed requests, printed when a test fails


def zh(locale: str) -> bool:
    return locale.startswith("zh")


def quiet_compose(port: int) -> dict[str, Any]:
    """A compose source: the quiet app, published on `port`."""
    return {"kind": "compose", "compose": (
        f"services:\n  web:\n    image: {IMAGE}\n"
        "    command: [\"sh\", \"-c\", \"exec sleep 100000\"]\n"
        f"    ports: [\"{port}:80\"]\n"
        "    environment:\n      QUIET_MODE: calm\n"
        "    volumes: [\"./data:/data\"]\n"
        "    stop_grace_period: 1s\n")}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own: an admin, a local store, three installs and a restart."""
    with own_server(tmp_path_factory, "defects", USER) as server:
        done = install_and_wait(server, GOOD, STORE_APP)
        assert done["state"] == "succeeded", done
        done = install_and_wait(server, QUIET, quiet_compose(free_port()))
        assert done["state"] == "succeeded", done
        for action in ("stop", "start", "restart"):
            acted = server.api("POST", f"/api/instances/{GOOD}/{action}")
            assert acted.status_code == 200, acted.text
        compose = f"services:\n  web:\n    image: {UNREACHABLE}\n"
        failed = install_and_wait(server, BROKEN, {"kind": "compose", "compose": compose})
        assert failed["state"] == "failed", failed
        yield server


@pytest.fixture(scope="module")
def signed_in(browser: Any, srv: Server) -> dict[str, Any]:
    return sign_in(browser, srv, USER)


def shot(page: Any, shots: Path, name: str, *, full: bool = False) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=full, animations="disabled")


def english_in(text: str) -> bool:
    """English words left in a Chinese text (proper and file names aside)."""
    return bool(re.search(r"[A-Za-z]{4,}", re.sub(r"StackHub|stackhub\.log", "", text)))


def is_primary(locator: Any) -> bool:
    return "n-button--primary-type" in (locator.get_attribute("class") or "")


# 1 ------------------------------------------------------------------------------------------
@LOCALES
def test_01_empty_logs_show_at_once(open_page: Any, srv: Server, shots: Path,
                                    locale: str) -> None:
    page = open_page(DESKTOP, locale)
    page.goto(f"{srv.url}/apps/{QUIET}?tab=logs")
    empty = "暂无日志输出。" if zh(locale) else "No log output yet."
    follow = page.locator(f'{t("logs-follow")}')
    expect(follow).to_have_attribute("aria-checked", "true")  # Follow is on (the default)
    loading = "加载中" if zh(locale) else "Loading"
    expect(page.locator(".logs .box")).not_to_contain_text(loading, timeout=3000)
    expect(page.locator(".logs .box")).to_contain_text(empty)
    expect(page.locator(t("logs-empty"))).to_have_text(empty)
    shot(page, shots, f"40-logs-empty-{locale[:2]}")
    follow.click()  # and with Follow off
    expect(follow).to_have_attribute("aria-checked", "false")
    expect(page.locator(t("logs-empty"))).to_have_text(empty, timeout=3000)
    follow.click()
    expect(page.locator(t("logs-empty"))).to_have_text(empty, timeout=3000)


# 4 ------------------------------------------------------------------------------------------
def test_04_buttons_follow_the_state(open_page: Any, srv: Server, shots: Path) -> None:
    page = open_page(DESKTOP, "en-US")
    page.goto(f"{srv.url}/apps/{GOOD}")
    expect(page.locator(f'{t("instance-status")}[data-status="running"]')).to_be_visible()
    header = page.locator("header.hero")
    assert is_primary(page.locator(t("instance-open")))
    expect(header.get_by_role("button", name="Stop", exact=True)).to_be_enabled()
    expect(header.get_by_role("button", name="Restart", exact=True)).to_be_enabled()
    assert header.get_by_role("button", name="Start", exact=True).count() == 0

    stopped = srv.api("POST", f"/api/instances/{GOOD}/stop")
    assert stopped.status_code == 200, stopped.text
    try:
        page.reload()
        expect(page.locator(f'{t("instance-status")}[data-status="stopped"]')).to_be_visible()
        start = header.get_by_role("button", name="Start", exact=True)
        expect(start).to_be_enabled()
        assert not is_primary(page.locator(t("instance-open"))), "Open is not the main button"
        assert is_primary(start), "Start is the main button of a stopped app"
        expect(header.get_by_role("button", name="Restart", exact=True)).to_be_disabled()
        shot(page, shots, "41-instance-stopped")
    finally:
        started = srv.api("POST", f"/api/instances/{GOOD}/start")
        assert started.status_code == 200, started.text

    # while an operation runs (installing, here with its container already up): no actions
    def installing(route: Any) -> None:
        response = route.fetch()
        body = response.json()
        body["status"] = "installing"
        route.fulfill(response=response, json=body)

    page.route(f"**/api/instances/{GOOD}", installing)
    page.reload()
    status = page.locator(f'{t("instance-status")}[data-status="installing"]')
    expect(status).to_be_visible()
    expect(status.locator(t("busy-spinner"))).to_be_visible()
    for action in ("Start", "Stop", "Restart"):
        button = header.get_by_role("button", name=action, exact=True)
        if button.count():
            expect(button).to_be_disabled()
    assert not is_primary(page.locator(t("instance-open")))
    shot(page, shots, "42-instance-installing")
    page.unroute(f"**/api/instances/{GOOD}")

    # an operation in progress has its own colour and a spinner, not the green of success
    def running(route: Any) -> None:
        response = route.fetch()
        body = response.json()
        if body.get("items"):
            body["items"][0]["state"] = "running"
            body["items"][0]["finished_at"] = None
        route.fulfill(response=response, json=body)

    page.route("**/api/operations?*", running)
    page.goto(f"{srv.url}/activity")
    ops = page.locator(t("operation"))
    expect(ops.first).to_have_attribute("data-state", "running")
    live = ops.first.locator(t("operation-state"))
    expect(live.locator(t("busy-spinner"))).to_be_visible()
    done = page.locator(f'{t("operation")}[data-state="succeeded"] {t("operation-state")}').first
    colour = "(el) => getComputedStyle(el).color"
    assert live.evaluate(colour) != done.evaluate(colour)
    shot(page, shots, "43-activity-running")


# 7 ------------------------------------------------------------------------------------------
@LOCALES
def test_07_placeholders(open_page: Any, srv: Server, shots: Path, locale: str) -> None:
    page = open_page(DESKTOP, locale, signed=False)
    page.goto(f"{srv.url}/login")
    user = page.locator(t("login-username"))
    expect(user).to_be_visible()
    bad = re.compile(r"Please Input|请输入$")
    for field in (user, page.locator(t("login-password"))):
        placeholder = field.get_attribute("placeholder") or ""
        assert placeholder and not bad.search(placeholder), placeholder
    page = open_page(DESKTOP, locale)
    page.goto(f"{srv.url}/settings/users")
    page.click(t("users-add"))
    form = page.locator(t("users-form"))
    inputs = form.locator("input")
    expect(inputs.first).to_be_visible()
    for i in range(inputs.count()):
        placeholder = inputs.nth(i).get_attribute("placeholder") or ""
        assert not bad.search(placeholder), placeholder
    shot(page, shots, f"44-add-user-{locale[:2]}")


# 8 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("viewport", "locale"), [(DESKTOP, "en-US"), (PHONE, "en-US"),
                                                  (PHONE, "zh-CN")], ids=["en", "phone-en",
                                                                          "phone-zh"])
def test_08_drawer_labels_stay_whole(open_page: Any, srv: Server, shots: Path,
                                     viewport: dict[str, int], locale: str) -> None:
    page = open_page(viewport, locale)
    page.goto(f"{srv.url}/containers")
    page.locator(f'a:has-text("{GOOD}-web")').first.click()
    drawer = page.locator(t("container-drawer"))
    labels = drawer.locator(".n-descriptions-table-header")
    expect(labels.first).to_be_visible()
    broken = labels.evaluate_all("""(els) => els.filter((el) => {
        const range = document.createRange(); range.selectNodeContents(el)
        const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)))
        return lines.size > 1 || el.scrollWidth > el.clientWidth + 1
      }).map((el) => el.textContent)""")
    assert broken == [], f"labels broken over lines: {broken}"
    shot(page, shots, f"45-drawer-{'phone' if viewport is PHONE else 'desktop'}-{locale[:2]}")


# 9 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_09_chinese_store_titles_are_whole(open_page: Any, srv: Server, shots: Path,
                                           viewport: dict[str, int]) -> None:
    page = open_page(viewport, "zh-CN")
    page.goto(f"{srv.url}/store")
    titles = page.locator('[data-test^="app-card-"] .head strong')
    expect(titles.first).to_be_visible()
    assert titles.count() > 1
    cut = titles.evaluate_all("""(els) => els.filter((el) => el.scrollWidth > el.clientWidth + 1
        || el.scrollHeight > el.clientHeight + 1).map((el) => el.textContent)""")
    assert cut == [], f"titles cut off: {cut}"
    shot(page, shots, f"46-store-zh-{'phone' if viewport is PHONE else 'desktop'}")


# 13 -----------------------------------------------------------------------------------------
def no_sideways_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide at {PHONE['width']}px"


@LOCALES
def test_13_phone_cards_and_tabs(open_page: Any, srv: Server, shots: Path, locale: str) -> None:
    page = open_page(PHONE, locale)
    state, ports = ("状态", "端口") if zh(locale) else ("State", "Ports")
    page.goto(f"{srv.url}/containers")
    cards = page.locator(f'{t("containers-table")} {t("card")}')
    expect(cards.first).to_be_visible()
    card = page.locator(f'{t("containers-table")} {t("card")}:has-text("{GOOD}-web")')
    expect(card).to_contain_text(state)
    expect(card).to_contain_text(ports)
    expect(card.locator(f'{t("card-field")}:has-text("{ports}")')).to_contain_text("→80")
    assert page.locator(f'{t("containers-table")} table').count() == 0
    no_sideways_scroll(page)
    shot(page, shots, f"47-containers-phone-{locale[:2]}")

    page.goto(f"{srv.url}/settings/users")
    users = page.locator(f'{t("users-table")} {t("card")}')
    expect(users.first).to_contain_text(USER)
    assert page.locator(f'{t("users-table")} table').count() == 0
    no_sideways_scroll(page)
    shot(page, shots, f"48-users-phone-{locale[:2]}")

    # every settings tab can be reached: the tab row scrolls, no label is cut off for good
    tabs = page.locator(".n-tabs-tab")
    for i in range(tabs.count()):
        tab = tabs.nth(i)
        tab.scroll_into_view_if_needed()
        box = tab.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], \
            (tab.inner_text(), box)
    audit_tab = page.locator(".n-tabs-tab:has-text('审计日志')" if zh(locale)
                             else ".n-tabs-tab:has-text('Audit log')")
    audit_tab.click()
    page.wait_for_url(re.compile(r"/settings/audit$"))
    entries = page.locator(f'{t("audit-table")} {t("card")}')
    expect(entries.first).to_be_visible()
    assert page.locator(f'{t("audit-table")} table').count() == 0
    no_sideways_scroll(page)
    shot(page, shots, f"49-audit-phone-{locale[:2]}")

    page.goto(f"{srv.url}/account")
    sessions = page.locator(f'{t("sessions")} {t("card")}')
    expect(sessions.first).to_be_visible()
    assert page.locator(f'{t("sessions")} table').count() == 0
    no_sideways_scroll(page)
    sessions.first.scroll_into_view_if_needed()
    shot(page, shots, f"50-sessions-phone-{locale[:2]}")


# 14 -----------------------------------------------------------------------------------------
def test_14_removed_instance_page_goes_back_to_the_list(open_page: Any, srv: Server,
                                                        shots: Path) -> None:
    name = "defects-gone"
    done = install_and_wait(srv, name, quiet_compose(free_port()))
    assert done["state"] == "succeeded", done
    page = open_page(DESKTOP, "en-US")
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if f"/api/instances/{name}" in r.url
            else None)
    page.goto(f"{srv.url}/apps/{name}")
    expect(page.locator(f'{t("instance-status")}[data-status="running"]')).to_be_visible()
    removed = srv.api("DELETE", f"/api/instances/{name}", params={"purge": "true"})
    assert removed.status_code == 202, removed.text
    wait_operation(srv, removed.json()["operation"]["id"])
    page.wait_for_url(re.compile(r"/apps$"), timeout=15_000)
    expect(page.locator(".n-message")).to_contain_text(name)
    shot(page, shots, "51-removed-back-to-list")
    count = len(asked)
    page.wait_for_timeout(4000)
    assert len(asked) == count, f"still asking for the removed instance: {asked[count:]}"


# 2 ------------------------------------------------------------------------------------------
def test_02_lazy_chunk_fails_once_then_loads(open_page: Any, srv: Server) -> None:
    page = open_page(DESKTOP, "en-US")
    failed: list[str] = []

    def fail_once(route: Any) -> None:
        if not failed:
            failed.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route(re.compile(r"/assets/users-tab-[^/]*\.js"), fail_once)
    page.goto(f"{srv.url}/settings/users")
    expect(page.locator(t("users-table"))).to_be_visible()
    assert failed, "the chunk request was not routed"


@LOCALES
def test_02_lazy_chunk_error_state_and_retry(open_page: Any, srv: Server, shots: Path,
                                             locale: str) -> None:
    page = open_page(DESKTOP, locale)
    tried: list[str] = []

    def fail(route: Any) -> None:
        tried.append(route.request.url)
        route.abort()

    pattern = re.compile(r"/assets/users-tab-[^/]*\.js")
    page.route(pattern, fail)
    page.goto(f"{srv.url}/settings/users")
    error = page.locator(t("lazy-error"))
    expect(error).to_be_visible()
    expect(error).to_contain_text("这部分页面无法加载" if zh(locale)
                                  else "This part of the page could not be loaded")
    assert len(tried) >= 2, f"one automatic retry expected: {tried}"
    shot(page, shots, f"52-lazy-error-{locale[:2]}")
    page.unroute(pattern)
    error.locator("button").click()
    expect(page.locator(t("users-table"))).to_be_visible()
    # the page keeps its own styles (the settings view's CSS came with it)
    assert page.locator(t("lazy-error")).count() == 0


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"], ids=["en", "zh"])
def test_02_lazy_route_error_state(open_page: Any, srv: Server, locale: str) -> None:
    page = open_page(DESKTOP, locale)
    page.goto(f"{srv.url}/")
    expect(page.locator("h1")).to_be_visible()
    pattern = re.compile(r"/assets/containers-view-[^/]*\.js")
    page.route(pattern, lambda route: route.abort())
    page.locator(".n-layout-sider a[href='/containers']").click()
    expect(page.locator(t("lazy-error"))).to_be_visible()
    page.unroute(pattern)
    page.locator(t("lazy-error")).locator("button").click()
    expect(page.locator(t("containers-table"))).to_be_visible()


# 3 ------------------------------------------------------------------------------------------
@LOCALES
def test_03_settings_show_labels_and_custom_apps(open_page: Any, srv: Server, shots: Path,
                                                 locale: str) -> None:
    page = open_page(DESKTOP, locale)
    page.goto(f"{srv.url}/apps/{GOOD}")
    params = page.locator(t("instance-parameters"))
    expect(params).to_be_visible()
    labels = ["网页端口", "问候语", "管理员密码"] if zh(locale) else \
        ["Web port", "Greeting", "Admin password"]
    for label in labels:
        expect(params).to_contain_text(label)
    for raw in ("WEB_PORT", "GREETING", "ADMIN_PASSWORD"):
        assert raw not in params.inner_text()
    expect(params).to_contain_text("********")
    params.scroll_into_view_if_needed()
    shot(page, shots, f"53-settings-labels-{locale[:2]}")

    page.goto(f"{srv.url}/apps/{QUIET}")
    custom = page.locator(t("instance-services"))
    expect(custom).to_be_visible()
    expect(custom).to_contain_text("QUIET_MODE")
    expect(custom).to_contain_text("calm")
    expect(custom).to_contain_text(":80")
    expect(custom).to_contain_text("/data")
    nothing = "此应用没有设置" if zh(locale) else "This app has no settings"
    assert nothing not in page.inner_text(".n-layout-content")
    custom.scroll_into_view_if_needed()
    shot(page, shots, f"54-settings-custom-{locale[:2]}")


# 5 ------------------------------------------------------------------------------------------
@LOCALES
def test_05_audit_outcomes_and_lifecycle(open_page: Any, srv: Server, shots: Path,
                                         locale: str) -> None:
    entries = srv.api("GET", "/api/audit").json()
    actions = [(e["action"], e["target"], e["success"]) for e in entries]
    assert ("instance.install", BROKEN, False) in actions, actions
    assert ("instance.install", GOOD, True) in actions, actions
    for action in ("stop", "start", "restart"):
        assert (f"instance.{action}", GOOD, True) in actions, actions

    page = open_page(DESKTOP, locale)
    page.goto(f"{srv.url}/settings/audit")
    table = page.locator(t("audit-table"))
    broken = table.locator(f'tr:has-text("{BROKEN}")').first
    expect(broken).to_contain_text("安装应用" if zh(locale) else "Install app")
    expect(broken).to_contain_text("失败" if zh(locale) else "Failed")
    for action in (["停止应用", "启动应用", "重启应用"] if zh(locale)
                   else ["Stop app", "Start app", "Restart app"]):
        expect(table).to_contain_text(action)
    text = table.inner_text()
    assert "instance.install" not in text and "{" not in text, text
    shot(page, shots, f"55-audit-{locale[:2]}")


# 6 ------------------------------------------------------------------------------------------
@LOCALES
def test_06_error_titles_say_what_failed(open_page: Any, srv: Server, shots: Path,
                                         locale: str) -> None:
    page = open_page(DESKTOP, locale, signed=False)
    page.goto(f"{srv.url}/login")
    page.fill(t("login-username"), USER)
    page.fill(t("login-password"), "not the password")
    page.click(t("login-submit"))
    alert = page.locator(t("error"))
    expect(alert).to_be_visible()
    title = "用户名或密码错误" if zh(locale) else "Wrong username or password"
    expect(alert.locator(".n-alert__header, .n-alert-body__title")).to_have_text(title)
    text = alert.inner_text()
    assert "Please sign in" not in text and "请先登录" not in text, text
    if zh(locale):
        assert not english_in(text), f"English left in: {text}"
    shot(page, shots, f"56-wrong-password-{locale[:2]}")


@LOCALES
def test_06_wrong_totp_code(open_page: Any, srv: Server, shots: Path, locale: str) -> None:
    name = f"tess-{locale[:2].lower()}"
    made = srv.api("POST", "/api/users", json={"username": name, "password": PASSWORD,
                                               "role": "member"})
    assert made.status_code in (200, 201), made.text
    page = open_page(DESKTOP, locale, signed=False)
    page.goto(f"{srv.url}/login")
    page.fill(t("login-username"), name)
    page.fill(t("login-password"), PASSWORD)
    page.click(t("login-submit"))
    page.wait_for_url(re.compile(r"/$"))
    page.goto(f"{srv.url}/account")
    page.click(t("totp-start"))
    secret = page.locator(t("totp-secret")).inner_text().strip()
    page.fill(t("totp-confirm-code"), pyotp.TOTP(secret).now())
    page.click(t("totp-confirm"))
    page.locator(t("recovery-codes")).wait_for()
    page.context.clear_cookies()
    page.goto(f"{srv.url}/login")
    page.fill(t("login-username"), name)
    page.fill(t("login-password"), PASSWORD)
    page.click(t("login-submit"))
    page.fill(t("login-code"), "000000")
    page.click(t("login-verify"))
    alert = page.locator(t("error"))
    title = "验证码错误" if zh(locale) else "Wrong code"
    expect(alert.locator(".n-alert__header, .n-alert-body__title")).to_have_text(title)
    if zh(locale):
        assert not english_in(alert.inner_text()), alert.inner_text()
    shot(page, shots, f"59-wrong-code-{locale[:2]}")


@LOCALES
def test_06_wrong_setup_token(open_page: Any, tmp_path_factory: pytest.TempPathFactory,
                              locale: str) -> None:
    fresh = Server(tmp_path_factory.mktemp("e2e-setup") / "data")
    fresh.start()
    try:
        page = open_page(DESKTOP, locale, signed=False)
        page.goto(fresh.url)
        page.wait_for_url(re.compile(r"/setup$"))
        page.fill(t("setup-token"), "not-the-token")
        page.fill(t("setup-username"), USER)
        page.fill(t("setup-password"), PASSWORD)
        page.fill(t("setup-confirm"), PASSWORD)
        page.click(t("setup-submit"))
        alert = page.locator(t("error"))
        expect(alert).to_be_visible()
        title = "设置令牌不正确" if zh(locale) else "Wrong setup token"
        expect(alert.locator(".n-alert__header, .n-alert-body__title")).to_have_text(title)
        if zh(locale):
            assert not english_in(alert.inner_text()), alert.inner_text()
    finally:
        fresh.stop()


# 10 -----------------------------------------------------------------------------------------
@LOCALES
def test_10_add_store_needs_trust_and_counts_right(open_page: Any, srv: Server, shots: Path,
                                                   tmp_path_factory: pytest.TempPathFactory,
                                                   locale: str) -> None:
    folder = write_store(tmp_path_factory.mktemp(f"store-{locale[:2]}"), free_port())
    name = f"folder-{locale[:2].lower()}"
    refused = srv.api("POST", "/api/stores", json={"name": name, "source": str(folder)})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["details"].get("reason") == "trust_required", refused.text

    page = open_page(DESKTOP, locale)
    page.goto(f"{srv.url}/settings/stores")
    page.click(t("store-add"))
    page.fill(t("store-name"), name)
    page.fill(t("store-source"), str(folder))
    click_until(page, t("store-save"), page.locator(t("store-trust-required")))  # it answered
    stores = [item["name"] for item in srv.api("GET", "/api/stores").json()]
    assert name not in stores, "a local folder was added without the trust flag"
    shot(page, shots, f"57-store-trust-{locale[:2]}")
    page.click(t("store-trust"))
    toast = page.locator(".n-message")
    click_until(page, t("store-save"), toast.filter(has_text=name))
    if zh(locale):
        expect(toast).to_contain_text(f"应用商店 {name} 已添加")
        expect(toast).to_contain_text("1 个应用")
    else:
        expect(toast).to_contain_text(f"Store {name} added with 1 app")
    assert "1 apps" not in page.inner_text("body")
    srv.api("DELETE", f"/api/stores/{name}")


# 12 -----------------------------------------------------------------------------------------
@LOCALES
def test_12_install_failure_in_plain_words(open_page: Any, srv: Server, shots: Path,
                                           locale: str) -> None:
    page = open_page(DESKTOP, locale)
    page.goto(f"{srv.url}/custom")
    page.fill(t("custom-compose"), f"services:\n  web:\n    image: {UNREACHABLE}\n")
    page.click(t("custom-next"))
    page.fill(t("install-name"), f"unreachable-{locale[:2].lower()}")
    page.click(t("install-review"))
    page.wait_for_selector(t("install-review-step"))
    page.click(t("install-confirm"))
    failed = page.locator(t("install-failed"))
    expect(failed).to_be_visible(timeout=OP_WAIT * 1000)
    cause = failed.locator(t("failure-cause"))
    expect(cause).to_contain_text("registry.invalid")
    expect(cause).to_contain_text("无法连接" if zh(locale) else "cannot reach")
    expect(cause).to_contain_text("镜像加速" if zh(locale) else "registry mirror")
    raw = failed.locator(t("failure-raw"))
    expect(raw).to_be_hidden()  # the engine's own words are under "details"
    failed.locator(t("failure-details")).click()
    expect(raw).to_contain_text("no such host")
    # step labels on one line; the image's full name is reachable
    for step in page.locator(f'{t("install-progress")} .steps li').all():
        assert step.evaluate("""(el) => el.getClientRects().length === 1
            && el.scrollHeight <= 2 * parseFloat(getComputedStyle(el).lineHeight)""")
    image = page.locator(f'{t("install-progress")} .image .name').first
    expect(image).to_have_attribute("title", UNREACHABLE)
    shot(page, shots, f"58-install-failed-{locale[:2]}")


def test_no_script_errors() -> None:
    assert errors == []
