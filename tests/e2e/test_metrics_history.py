"""Metrics history in a real browser (issue 14, item 4): the dashboard's top apps and host
charts, and an app page's charts with their ranges.

English and Chinese, 375 px and 1440 px. The module runs its own server sampling every second
(STACKHUB_METRICS_INTERVAL=1) with one instance installed before the tests.
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
    IMAGE,
    PHONE,
    WAIT,
    Server,
    ensure_instance,
    no_sideways_scroll,
    own_server,
    sign_in,
    t,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "charts"
PIN_LOCALE = True  # open_page stores the console language as a user would
NAME = "metrics-e2e"
COMPOSE = f"""services:
  web:
    image: {IMAGE}
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
"""
expect.set_options(timeout=WAIT)


@pytest.fixture(scope="module")
def metrics_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with own_server(tmp_path_factory, "metrics", USER, store=False,
                    env={"STACKHUB_METRICS_INTERVAL": "1"}) as srv:
        ensure_instance(srv, NAME, {"kind": "compose", "compose": COMPOSE})
        deadline = time.monotonic() + 30
        while not any(r["name"] == NAME and r["memory"] for r in
                      srv.api("GET", "/api/metrics/top").json()["instances"]):
            assert time.monotonic() < deadline, "the instance was never sampled"
            time.sleep(0.5)
        time.sleep(2)  # a few samples: rates need two readings
        yield srv


@pytest.fixture(scope="module")
def signed_in(browser: Any, metrics_server: Server) -> dict[str, Any]:
    return sign_in(browser, metrics_server, USER)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["375", "1440"])
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"], ids=["en", "zh"])
def test_dashboard_and_app_page_chart_the_history(open_page: Any, metrics_server: Server,
                                                  shots: Path, viewport: dict[str, int],
                                                  locale: str) -> None:
    zh = locale.startswith("zh")
    page = open_page(viewport, locale)
    page.goto(metrics_server.url + "/")
    expect(page.locator(t(f"top-cpu-{NAME}"))).to_be_visible()
    expect(page.locator(t(f"top-memory-{NAME}"))).to_contain_text("B")
    expect(page.locator(t("top-apps"))).to_contain_text(
        "CPU 占用最高的应用" if zh else "Top apps by CPU")
    host = page.locator(t("history-host"))
    expect(host.locator(t("chart-cpu")).locator(t("chart-line")).first).to_be_attached()
    expect(host.locator(t("chart-memory"))).to_contain_text("内存" if zh else "Memory")
    no_sideways_scroll(page, viewport["width"])
    page.screenshot(path=str(shots / f"14-metrics-dashboard-{locale}-{viewport['width']}.png"),
                    full_page=True)

    page.click(t(f"top-cpu-{NAME}") + " a")  # to the app's Metrics tab
    charts = page.locator(t("history-instance"))
    expect(charts.locator(t("chart-memory")).locator(t("chart-line")).first).to_be_attached()
    expect(charts.locator(t("chart-io"))).to_contain_text("块 I/O" if zh else "Block I/O")
    page.click(t("range-24h"))
    expect(charts).to_contain_text("每 240 秒一个点" if zh else "one point per 240 s")
    expect(charts.locator(t("chart-cpu")).locator(t("chart-line")).first).to_be_attached()
    no_sideways_scroll(page, viewport["width"])
    page.screenshot(path=str(shots / f"14-metrics-app-{locale}-{viewport['width']}.png"),
                    full_page=True)
