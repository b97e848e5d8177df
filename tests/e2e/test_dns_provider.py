"""The DNS provider form in Settings → Domains, in a real browser: a missing key refused with
nothing stored, credentials saved write-only (the page and the API show which keys are set,
never a value), providers this lego lacks offered through lexicon, the DNS records StackHub
keeps (a sync whose public address page does not answer fails clearly), removal; at 1440 px
in English and at
375 px in Chinese (no sideways scrolling); then a base with a wildcard by DNS-01 chosen in the
form, its operation followed to the end, the record check and a renewal.

The module runs its own server with the gateway lab (tests/integration/gateway_env.py): lego's
exec provider publishes the challenge through pebble-challtestsrv, Pebble issues.
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
    PHONE,
    WAIT,
    Server,
    gateway_env,
    no_sideways_scroll,
    own_server,
    sign_in,
    t,
)
from tests.integration.gateway_env import AcmeLab

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "dnsadmin"
SECRET = "wJalrXUtnFEMI-e2e-secret-91b2"
expect.set_options(timeout=WAIT)
errors: list[str] = []


@pytest.fixture(scope="module")
def dns_server(lab: AcmeLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = gateway_env(lab, STACKHUB_DNS01_PROPAGATION_CHECK="0", STACKHUB_DNS01_RENEW_DAYS="36500",
                      STACKHUB_PUBLIC_IP_URL="http://127.0.0.1:9/")  # nothing answers there
    with own_server(tmp_path_factory, "dns-provider", USER, store=False, env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def signed_in(browser: Any, dns_server: Server) -> dict[str, Any]:
    return sign_in(browser, dns_server, USER)


def key(name: str) -> str:
    return f'{t(f"dns-provider-key-{name}")} input'


def test_1_provider_form_desktop_english(open_page: Any, dns_server: Server,
                                         shots: Path) -> None:
    page = open_page(DESKTOP, "en-US")
    page.goto(f"{dns_server.url}/settings/domains")
    card = page.locator(t("dns-provider"))
    expect(card).to_contain_text("DNS provider")
    expect(page.locator(t("dns-provider-current"))).to_have_count(0)
    # Debian's lego lacks Cloudflare: offered through lego's exec provider and lexicon
    page.click(t("dns-provider-kind"))
    cloudflare = page.locator(".n-base-select-option", has_text="Cloudflare")
    expect(cloudflare).to_contain_text("through lexicon")
    page.locator(".n-base-select-option", has_text="Amazon Route 53").click()
    # bad input: a required key missing, a clear error, nothing stored
    page.fill(key("AWS_ACCESS_KEY_ID"), "AKIAE2ETEST")
    page.click(t("dns-provider-save"))
    expect(card.locator(".n-alert")).to_contain_text(
        "needs AWS_ACCESS_KEY_ID+AWS_SECRET_ACCESS_KEY")
    assert dns_server.api("GET", "/api/gateway/dns-provider").json()["kind"] is None
    page.fill(key("AWS_SECRET_ACCESS_KEY"), SECRET)
    page.fill(f'{t("dns-provider-email")} input', "admin@example.com")
    page.click(t("dns-provider-save"))
    current = page.locator(t("dns-provider-current"))
    expect(current).to_contain_text("route53")
    expect(current).to_contain_text("AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY")
    shown = dns_server.api("GET", "/api/gateway/dns-provider")
    assert shown.json()["keys"] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    assert SECRET not in shown.text
    # the inputs are emptied after saving: the value never comes back to the page
    expect(page.locator(key("AWS_SECRET_ACCESS_KEY"))).to_have_value("")
    assert SECRET not in page.content()
    # without a base the wildcard cannot be asked for
    expect(page.locator(t("dns-provider-wildcard"))).to_be_disabled()
    # Route 53 records are kept by StackHub; the public address page does not answer here
    records = page.locator(t("dns-records"))
    expect(records).to_contain_text("StackHub writes these records")
    expect(records).to_contain_text("not learnt yet")
    page.click(t("dns-records-sync"))
    expect(card.locator(".n-alert").first).to_contain_text("cannot learn the public address")
    expect(page.locator(t("dns-records-error"))).to_contain_text("http://127.0.0.1:9/")
    assert SECRET not in page.content()
    page.screenshot(path=str(shots / "dns-provider-1440-en.png"), full_page=True,
                    animations="disabled")
    assert not errors, errors


def test_2_phone_chinese_then_remove(open_page: Any, dns_server: Server, shots: Path) -> None:
    page = open_page(PHONE, "zh-CN")
    page.goto(f"{dns_server.url}/settings/domains")
    card = page.locator(t("dns-provider"))
    expect(card).to_contain_text("DNS 服务商")
    expect(page.locator(t("dns-provider-current"))).to_contain_text("已设置")
    expect(card).to_contain_text("通配符证书")
    expect(page.locator(t("dns-records"))).to_contain_text("StackHub 维护的 DNS 记录")
    page.wait_for_timeout(300)
    no_sideways_scroll(page)
    page.screenshot(path=str(shots / "dns-provider-375-zh.png"), full_page=True)
    page.click(t("dns-provider-remove"))
    expect(page.locator(t("dns-provider-current"))).to_have_count(0)
    assert dns_server.api("GET", "/api/gateway/dns-provider").json()["kind"] is None
    assert not errors, errors


def test_3_wildcard_by_dns01_from_the_form(open_page: Any, dns_server: Server, lab: AcmeLab,
                                           tmp_path: Path) -> None:
    hook = tmp_path / "hook.sh"
    hook.write_text(  # lego's exec provider: present|cleanup FQDN VALUE -> challtestsrv
        "#!/usr/bin/python3\nimport json, sys, urllib.request\n"
        "action, fqdn = sys.argv[1], sys.argv[2]\n"
        "body = {'host': fqdn, 'value': sys.argv[3]} if action == 'present' else {'host': fqdn}\n"
        f"url = 'http://127.0.0.1:{lab.mgmt_port}/' + "
        "('set-txt' if action == 'present' else 'clear-txt')\n"
        "urllib.request.urlopen(urllib.request.Request(url, json.dumps(body).encode(), "
        "method='POST'), timeout=10)\n")
    hook.chmod(0o755)
    stored = dns_server.api("PUT", "/api/gateway/dns-provider", json={
        "kind": "exec", "email": "admin@example.com",
        "env": {"EXEC_PATH": str(hook), "EXEC_SEQUENCE_INTERVAL": "1",
                "EXEC_POLLING_INTERVAL": "1"}})
    assert stored.status_code == 200, stored.text
    page = open_page(DESKTOP, "en-US")
    page.goto(f"{dns_server.url}/settings/domains")
    page.fill(f'{t("domains-base-input")} input', "box.e2e.test")
    page.click(t("domains-tls"))
    page.locator(".n-base-select-option", has_text="Wildcard by DNS-01").click()
    page.click(t("domains-save"))
    run = page.locator(t("dns-provider-run"))
    expect(run).to_contain_text("The wildcard certificate is in place", timeout=120_000)
    state = page.locator(t("dns-provider-wildcard-state"))
    expect(state).to_contain_text("*.box.e2e.test")
    expect(state).to_contain_text("renewed from")
    expect(page.locator(t("dns-provider-dns-ok"))).to_contain_text("reaches this box")
    expect(page.locator(t("domains-current"))).to_contain_text("box.e2e.test")
    base = dns_server.api("GET", "/api/domains/base").json()
    assert base["tls"] == "dns01" and base["wildcard"]["issuer"].startswith("Pebble")
    expires = base["wildcard"]["expires_at"]
    page.click(t("dns-provider-renew"))
    deadline = time.monotonic() + 120
    while True:
        ops = dns_server.api("GET", "/api/operations",
                             params={"kind": "wildcard"}).json()["items"]
        if (len(ops) == 2 and ops[0]["state"] != "running") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [o["state"] for o in ops] == ["succeeded", "succeeded"]
    expect(run).to_contain_text("The wildcard certificate is in place")
    assert dns_server.api("GET", "/api/domains/base").json()["wildcard"]["expires_at"] >= expires
    assert not errors, errors
