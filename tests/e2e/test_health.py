"""The health page (issue 15, items 3 and 5): StackHub's version with a newer release from the
configured source, and the `stackhub doctor` report with a clock an hour off.

English and Chinese, 375 px and 1440 px. The module's own server reads its release source from
a file (99.0.0 available) and compares its clock with a local HTTP server whose Date header is
an hour ahead, so the page shows an update and a clock error with its fix.
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    DESKTOP,
    PHONE,
    WAIT,
    Server,
    no_sideways_scroll,
    own_server,
    sign_in,
    t,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "healer"
PIN_LOCALE = True  # open_page stores the console language as a user would
expect.set_options(timeout=WAIT)


class _HourAhead(BaseHTTPRequestHandler):
    """Answers every request with a Date header an hour ahead."""

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.end_headers()

    def date_time_string(self, timestamp: float | None = None) -> str:
        return email.utils.formatdate(time.time() + 3600, usegmt=True)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def health_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    clock = ThreadingHTTPServer(("127.0.0.1", 0), _HourAhead)
    threading.Thread(target=clock.serve_forever, daemon=True).start()
    release = tmp_path_factory.mktemp("release") / "latest.json"
    release.write_text(json.dumps({"version": "99.0.0", "url": "https://example.test/"
                                   "stackhub-99.0.0-py3-none-any.whl",
                                   "notes": "A release from the test's source"}))
    env = {"STACKHUB_RELEASE_SOURCE": str(release),
           "STACKHUB_CLOCK_SOURCE": f"http://127.0.0.1:{clock.server_port}/"}
    try:
        with own_server(tmp_path_factory, "health", USER, store=False, env=env) as srv:
            yield srv
    finally:
        clock.shutdown()
        clock.server_close()


@pytest.fixture(scope="module")
def signed_in(browser: Any, health_server: Server) -> dict[str, Any]:
    return sign_in(browser, health_server, USER)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["375", "1440"])
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"], ids=["en", "zh"])
def test_health_page_shows_version_update_and_checks(open_page: Any, health_server: Server,
                                                     shots: Path, viewport: dict[str, int],
                                                     locale: str) -> None:
    zh = locale.startswith("zh")
    version = health_server.api("GET", "/api/system/version").json()
    page = open_page(viewport, locale)
    page.goto(health_server.url + "/health")
    expect(page.locator("h1")).to_have_text("健康" if zh else "Health")
    expect(page.locator(t("health-version-number"))).to_have_text(
        f"StackHub {version['version']}")
    update = page.locator(t("health-update"))
    expect(update).to_contain_text("StackHub 99.0.0 已发布" if zh
                                   else "StackHub 99.0.0 is available")
    expect(update).to_contain_text("A release from the test's source")
    expect(update).to_contain_text("sudo bash install.sh")

    clock = page.locator(t("check-clock"))
    expect(clock).to_contain_text("错误" if zh else "error")
    expect(clock).to_contain_text("s behind http://127.0.0.1:")
    expect(clock.locator(t("check-fix"))).to_be_visible()
    expect(page.locator(t("check-database"))).to_contain_text("正常" if zh else "ok")
    summary = page.locator(t("health-summary"))
    expect(summary).to_contain_text("个错误" if zh else "errors")
    # errors first, then warnings, then the rest: the clock error leads the list
    first = page.locator("li[data-test^='check-']").first
    expect(first).to_have_attribute("data-test", "check-clock")

    page.click(t("health-rerun"))
    expect(page.locator(t("check-clock"))).to_be_visible()
    page.click(t("health-check-updates"))
    expect(update).to_be_visible()
    if viewport["width"] >= 1000:  # the side menu leads here
        expect(page.locator(".n-menu a[href='/health']")).to_have_text("健康" if zh else "Health")
    no_sideways_scroll(page, viewport["width"])
    page.screenshot(path=str(shots / f"15-health-{locale}-{viewport['width']}.png"),
                    full_page=True)


def test_health_is_for_admins(health_server: Server) -> None:
    """The page's data: members and strangers get nothing."""
    import httpx

    answer = httpx.get(f"{health_server.url}/api/system/doctor", timeout=30)
    assert answer.status_code == 401
    assert httpx.get(f"{health_server.url}/api/system/version", timeout=30).status_code == 401
