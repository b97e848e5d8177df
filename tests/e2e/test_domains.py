"""Domains in a real browser: the settings tab (base domain, gateway, the LAN CA's root with
install steps per OS, every domain) and an app's domains (custom domain with the live progress
of its operation, DNS check, wrong record refused, sign-in toggle, removal), at 1440 px in
English and at 375 px in Chinese (no sideways scrolling).

The module runs its own server with the gateway on high ports, Pebble as the ACME CA and
pebble-challtestsrv as the DNS (tests/integration/gateway_env.py).
"""

from __future__ import annotations

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
)
from tests.integration.gateway_env import AcmeLab, running_lab

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "warden"
NAME = "dom-web"
BASE = "home.lan"
expect.set_options(timeout=WAIT)
errors: list[str] = []


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeLab]:
    yield from running_lab(tmp_path_factory)


@pytest.fixture(scope="module")
def domain_server(lab: AcmeLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own with the gateway (no base yet), an admin and one app."""
    with own_server(tmp_path_factory, "domains", USER,
                    env={**lab.env(), "STACKHUB_GATEWAY": ""}) as srv:
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
