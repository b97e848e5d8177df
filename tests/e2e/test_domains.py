"""Domains in a real browser: the settings tab (base domain, gateway, the LAN CA's root with
install steps per OS, every domain with its DNS status and the record to create) and an app's
domains (custom domain with the live progress of its operation, DNS check, wrong record
refused, sign-in toggle, removal), at 1440 px in English and at 375 px in Chinese (no
sideways scrolling).

The module runs its own server with the gateway on high ports, Pebble as the ACME CA and
pebble-challtestsrv as the DNS (tests/integration/gateway_env.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    DESKTOP,
    PASSWORD,
    PHONE,
    STORE_APP,
    WAIT,
    Server,
    ensure_instance,
    gateway_env,
    no_sideways_scroll,
    own_server,
    sign_in,
    signed_in_state,
    t,
)
from tests.integration.gateway_env import AcmeLab

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "warden"
NAME = "dom-web"
BASE = "home.lan"
expect.set_options(timeout=WAIT)
errors: list[str] = []


@pytest.fixture(scope="module")
def domain_server(lab: AcmeLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own with the gateway (no base yet), an admin and one app."""
    with own_server(tmp_path_factory, "domains", USER,
                    env=gateway_env(lab)) as srv:
        ensure_instance(srv, NAME, STORE_APP)
        yield srv


@pytest.fixture(scope="module")
def signed_in(browser: Any, domain_server: Server) -> dict[str, Any]:
    return sign_in(browser, domain_server, USER)


def test_1_settings_set_the_base_and_get_the_lan_root(open_page: Any, domain_server: Server,
                                                      shots: Path) -> None:
    page = open_page(DESKTOP, "en-US")
    page.goto(f"{domain_server.url}/settings/domains")
    card = page.locator(t("domains-base"))
    expect(card).to_contain_text("Base domain")
    expect(page.locator(t("domains-current"))).to_have_count(0)
    # bad input: a clear error, nothing changed
    page.fill(f'{t("domains-base-input")} input', "10.1.2.3")
    page.click(t("domains-save"))
    expect(card.locator(".n-alert")).to_contain_text("IP address")
    assert domain_server.api("GET", "/api/domains/base").json()["base"] is None
    page.fill(f'{t("domains-base-input")} input', BASE)
    page.click(t("domains-save"))
    expect(page.locator(t("domains-current"))).to_contain_text(f"Apps are served under {BASE}")
    expect(page.locator(t("domains-gateway"))).to_contain_text("Gateway running")
    assert domain_server.api("GET", "/api/domains/base").json()["base"] == BASE
    ca = page.locator(t("domains-ca"))
    expect(ca).to_contain_text("Trust StackHub's CA")
    for os_name in ("Windows", "macOS", "Linux", "Android", "iPhone and iPad"):
        expect(ca.locator(f".n-collapse-item__header:has-text('{os_name}')")).to_have_count(1)
    ca.locator(".n-collapse-item__header:has-text('Linux')").click()
    expect(ca).to_contain_text("update-ca-certificates")
    with page.expect_download() as download:
        page.click(t("domains-ca-download"))
    saved = download.value.path()
    assert Path(saved).read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert download.value.suggested_filename == "stackhub-ca.crt"
    table = page.locator(t("domains-all"))
    expect(table).to_contain_text(f"{NAME}.{BASE}")
    page.click(t("domains-recheck"))
    expect(page.locator(t("domains-recheck-result"))).to_contain_text("0 dangling")
    page.screenshot(path=str(shots / "domains-settings-1440-en.png"), full_page=True,
                    animations="disabled")
    assert not errors, errors


def _protect(srv: Server, on: bool) -> Any:
    """Protect the app or not (one request: a 503 here is a gateway fault, not settling)."""
    return srv.api("PUT", f"/api/instances/{NAME}/protection", json={"protected": on})


def _open_links(page: Any, srv: Server, href: str, phone: bool) -> None:
    """The app list, the dashboard and the app page all open the app at `href`."""
    page.goto(f"{srv.url}/apps")
    expect(page.locator(t(f"open-{NAME}"))).to_have_attribute("href", href)
    if phone:
        page.wait_for_timeout(300)
        no_sideways_scroll(page)
    page.goto(srv.url)
    expect(page.locator(t(f"tile-{NAME}"))).to_have_attribute("href", href)
    page.goto(f"{srv.url}/apps/{NAME}")
    expect(page.locator(t("instance-open"))).to_have_attribute("href", href)
    if phone:
        page.wait_for_timeout(300)
        no_sideways_scroll(page)


def test_1b_open_uses_the_https_name_for_admins_and_members(
        browser: Any, open_page: Any, domain_server: Server, lab: AcmeLab,
        shots: Path) -> None:
    href = f"https://{NAME}.{BASE}:{lab.https_port}"
    # protected: the app's port answers on 127.0.0.1 only, so only the gateway name works
    put = _protect(domain_server, True)
    assert put.status_code == 200, put.text
    made = domain_server.api("POST", "/api/users", json={
        "username": "mira", "password": PASSWORD, "role": "member"})
    assert made.status_code in (200, 201, 409), made.text
    granted = domain_server.api("PUT", "/api/users/mira/instances", json={"instances": [NAME]})
    assert granted.status_code == 200, granted.text
    member = signed_in_state(browser, domain_server.url, "mira", PASSWORD, DESKTOP, WAIT)
    listed = domain_server.api("GET", "/api/instances").json()
    assert [i["open_url"] for i in listed if i["name"] == NAME] == [href]
    contexts: list[Any] = []

    def member_page(viewport: dict[str, int], locale: str) -> Any:
        phone = viewport["width"] < 600
        ctx = browser.new_context(viewport=viewport, locale=locale, storage_state=member,
                                  is_mobile=phone, has_touch=phone,
                                  device_scale_factor=2 if phone else 1)
        ctx.set_default_timeout(WAIT)
        contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda err: errors.append(str(err)))
        return page

    try:
        _open_links(open_page(DESKTOP, "en-US"), domain_server, href, phone=False)
        _open_links(open_page(PHONE, "zh-CN"), domain_server, href, phone=True)
        page = member_page(PHONE, "zh-CN")
        _open_links(page, domain_server, href, phone=True)
        expect(page.locator(t("instance-domains"))).to_have_count(0)  # admins only
        page.goto(f"{domain_server.url}/apps")
        expect(page.locator(t(f"open-{NAME}"))).to_contain_text("打开")
        page.screenshot(path=str(shots / "domains-open-member-375-zh.png"), full_page=True)
        _open_links(member_page(DESKTOP, "en-US"), domain_server, href, phone=False)
    finally:
        for ctx in contexts:
            ctx.close()
        off = _protect(domain_server, False)
        assert off.status_code == 200, off.text
    assert not errors, errors


def test_2_app_page_custom_domain_with_live_progress(open_page: Any, domain_server: Server,
                                                      lab: AcmeLab, shots: Path) -> None:
    lab.dns("set-cname", host="shop.e2e.test.", target=f"{NAME}.{BASE}.")
    lab.dns("add-a", host="wrong.e2e.test.", addresses=["10.9.8.7"])
    page = open_page(DESKTOP, "en-US")
    page.goto(f"{domain_server.url}/apps/{NAME}")
    card = page.locator(t("instance-domains"))
    expect(card.locator(t(f"domain-{NAME}.{BASE}"))).to_contain_text("automatic")
    expect(card.locator(t(f"domain-{NAME}.{BASE}"))).to_contain_text("active")
    # "Open" uses the app's https name on the gateway, not its port
    expect(page.locator(t("instance-open"))).to_have_attribute(
        "href", f"https://{NAME}.{BASE}:{lab.https_port}")
    # a wrong record: refused with the record to create, nothing added
    page.fill(f'{t("domain-input")} input', "wrong.e2e.test")
    page.click(t("domain-add"))
    expect(card).to_contain_text("points at 10.9.8.7")
    expect(card).to_contain_text(f"wrong.e2e.test. CNAME {NAME}.{BASE}.")
    expect(card.locator(t("domain-wrong.e2e.test"))).to_have_count(0)
    # a CNAME to the app's automatic name: the operation's progress, then HTTPS
    page.fill(f'{t("domain-input")} input', "Shop.E2E.test")
    page.click(t("domain-add"))
    progress = card.locator(t("domain-progress"))
    expect(progress).to_contain_text("shop.e2e.test")
    expect(progress).to_contain_text("Serving over HTTPS", timeout=90_000)
    shop = card.locator(t("domain-shop.e2e.test"))
    expect(shop).to_contain_text("custom")
    expect(shop.locator(t("domain-state"))).to_have_text("active")
    expect(shop).to_contain_text("Pebble")
    shop.locator(t("domain-check")).click()
    expect(shop.locator(t("domain-check-result"))).to_contain_text("DNS reaches this box")
    # the sign-in in front of the app
    card.locator(t("domain-protect")).click()
    # its web port is published on 127.0.0.1 only while protected (the page says so)
    expect(card.locator(t("domain-protect-local"))).to_contain_text("127.0.0.1")
    expect(shop.locator(t("domain-protected"))).to_be_visible()
    read = domain_server.api("GET", f"/api/instances/{NAME}/protection").json()
    assert read["protected"] is True and read["local_port"] is not None
    page.screenshot(path=str(shots / "domains-app-1440-en.png"), full_page=True,
                    animations="disabled")
    card.locator(t("domain-protect")).click()
    expect(card.locator(t("domain-protect-local"))).to_have_count(0)
    shop.locator(t("domain-remove")).click()
    expect(card.locator(t("domain-shop.e2e.test"))).to_have_count(0)
    names = [d["name"] for d in domain_server.api("GET", "/api/domains").json()]
    assert names == [f"{NAME}.{BASE}"]
    assert not errors, errors


def test_3_phone_chinese(open_page: Any, domain_server: Server, shots: Path) -> None:
    page = open_page(PHONE, "zh-CN")
    page.goto(f"{domain_server.url}/settings/domains")
    expect(page.locator(t("domains-base"))).to_contain_text("基础域名")
    expect(page.locator(t("domains-ca"))).to_contain_text("下载根证书")
    expect(page.locator(t("domains-all"))).to_contain_text(f"{NAME}.{BASE}")
    page.wait_for_timeout(300)
    no_sideways_scroll(page)
    page.screenshot(path=str(shots / "domains-settings-375-zh.png"), full_page=True)
    page.goto(f"{domain_server.url}/apps/{NAME}")
    card = page.locator(t("instance-domains"))
    expect(card).to_contain_text("域名")
    expect(card).to_contain_text("需要登录")
    expect(card.locator(t(f"domain-{NAME}.{BASE}"))).to_contain_text("自动")
    page.wait_for_timeout(300)
    no_sideways_scroll(page)
    page.screenshot(path=str(shots / "domains-app-375-zh.png"), full_page=True)
    assert not errors, errors


def test_4_the_domains_page_shows_dns_status_and_the_record_to_create(
        open_page: Any, domain_server: Server, lab: AcmeLab, shots: Path) -> None:
    if domain_server.api("GET", "/api/domains/base").json()["base"] != BASE:  # run alone
        put = domain_server.api("PUT", "/api/domains/base", json={"base": BASE})
        assert put.status_code == 200, put.text
    host = "drift.e2e.test"
    lab.dns("add-a", host=f"{host}.", addresses=["127.0.0.1"])
    accepted = domain_server.api("POST", "/api/domains", json={"instance": NAME, "domain": host})
    assert accepted.status_code == 202, accepted.text
    op_id = accepted.json()["operation"]["id"]
    deadline = time.monotonic() + 90
    while (op := domain_server.api("GET", f"/api/operations/{op_id}").json())["state"] \
            == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert op["state"] == "succeeded", op
    try:
        page = open_page(DESKTOP, "en-US")
        page.goto(f"{domain_server.url}/settings/domains")
        cell = page.locator(t(f"domains-dns-{host}"))
        expect(cell).to_contain_text("OK")
        expect(cell.locator(t("domains-record"))).to_have_count(0)
        # DNS moves away: the re-check flags it, and the page shows the record to create
        lab.dns("clear-a", host=f"{host}.")
        lab.dns("add-a", host=f"{host}.", addresses=["198.51.100.9"])
        page.click(t("domains-recheck"))
        expect(cell).to_contain_text("Wrong record")
        expect(cell.locator(t("domains-record"))).to_contain_text(
            f"Create at your DNS provider: {host}. CNAME {NAME}.{BASE}.")
        listed = {d["name"]: d for d in domain_server.api("GET", "/api/domains").json()}
        assert listed[host]["dns_status"] == "wrong"
        assert listed[host]["record"] == {"type": "CNAME", "name": host,
                                          "value": f"{NAME}.{BASE}"}
        cell.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "domains-dns-record-1440-en.png"), full_page=True,
                        animations="disabled")
        phone = open_page(PHONE, "zh-CN")
        phone.goto(f"{domain_server.url}/settings/domains")
        small = phone.locator(t(f"domains-dns-{host}"))
        expect(small).to_contain_text("记录错误")
        expect(small.locator(t("domains-record"))).to_contain_text(
            f"{host}. CNAME {NAME}.{BASE}.")
        phone.wait_for_timeout(300)
        no_sideways_scroll(phone)
        small.scroll_into_view_if_needed()
        phone.screenshot(path=str(shots / "domains-dns-record-375-zh.png"), full_page=True)
        # the app's page shows the same
        phone.goto(f"{domain_server.url}/apps/{NAME}")
        row = phone.locator(t("instance-domains")).locator(t(f"domain-{host}"))
        expect(row.locator(t("domain-record"))).to_contain_text(
            f"记录错误 请在 DNS 服务商处创建\uff1a {host}. CNAME {NAME}.{BASE}.")
        phone.wait_for_timeout(300)
        no_sideways_scroll(phone)
    finally:
        domain_server.api("DELETE", f"/api/domains/{host}", params={"instance": NAME})
        lab.dns("clear-a", host=f"{host}.")
    assert not errors, errors
