"""A public base in the console (issue 11, item 1): setting it shows whether ``*.<base>``
reaches this box, and when not, the record to create (a warning: the base is set all the
same), at 1440 px in English and at 375 px in Chinese (no sideways scrolling); the console
words the problem from its code, so a Chinese console says it in Chinese.

Its own server with the gateway on high ports and pebble-challtestsrv as the DNS
(tests/integration/gateway_env.py); no app is needed.
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
USER = "pubadmin"
BASE = "box.example.test"
PROBE = f"stackhub-wildcard-check.{BASE}."
expect.set_options(timeout=WAIT)
errors: list[str] = []


@pytest.fixture(scope="module")
def base_server(lab: AcmeLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own with the gateway (no base yet) and an admin."""
    with own_server(tmp_path_factory, "public-base", USER, store=False,
                    env=gateway_env(lab)) as srv:
        yield srv


@pytest.fixture(scope="module")
def signed_in(browser: Any, base_server: Server) -> dict[str, Any]:
    return sign_in(browser, base_server, USER)


def _save(page: Any, srv: Server) -> None:
    page.goto(f"{srv.url}/settings/domains")
    page.fill(f'{t("domains-base-input")} input', BASE)
    page.click(t("domains-save"))


def test_a_wrong_wildcard_record_is_shown_with_the_record_to_create(
        open_page: Any, base_server: Server, lab: AcmeLab, shots: Path) -> None:
    lab.dns("add-a", host=PROBE, addresses=["192.0.2.7"])
    page = open_page(DESKTOP, "en-US")
    try:
        _save(page, base_server)
        shown = page.locator(t("domains-base-dns"))
        expect(shown).to_contain_text(f"*.{BASE} points at 192.0.2.7, not at this box")
        expect(shown).to_contain_text(f"change the record at the DNS provider to *.{BASE}. A "
                                      "127.0.0.1")
        dns = base_server.api("GET", "/api/domains/base").json()["dns"]
        assert dns["problem_code"] == "points_elsewhere" and dns["record_name"] == f"*.{BASE}"
        zh = open_page(PHONE, "zh-CN")  # the same check, worded in Chinese from its code
        zh.goto(f"{base_server.url}/settings/domains")
        worded = zh.locator(t("domains-base-dns"))
        expect(worded).to_contain_text(f"*.{BASE} 指向 192.0.2.7")
        expect(worded).to_contain_text("而不是本机")
        expect(worded).to_contain_text(f"请在 DNS 服务商处将记录改为 *.{BASE}. A 127.0.0.1")
        expect(worded).not_to_contain_text("points at")
    finally:
        lab.dns("clear-a", host=PROBE)
    expect(page.locator(t("domains-current"))).to_contain_text(BASE)  # set all the same
    assert base_server.api("GET", "/api/domains/base").json()["base"] == BASE
    page.screenshot(path=str(shots / "domains-public-base-1440-en.png"), full_page=True,
                    animations="disabled")
    assert not errors, errors


def test_a_right_record_is_confirmed_on_a_phone_in_chinese(
        open_page: Any, base_server: Server, shots: Path) -> None:
    page = open_page(PHONE, "zh-CN")
    _save(page, base_server)
    expect(page.locator(t("domains-base-dns"))).to_contain_text("记录已指向本机")
    expect(page.locator(f'{t("domains-base-dns")} .n-alert')).to_have_count(0)
    page.wait_for_timeout(300)
    no_sideways_scroll(page)
    page.screenshot(path=str(shots / "domains-public-base-375-zh.png"), full_page=True,
                    animations="disabled")
    assert not errors, errors
