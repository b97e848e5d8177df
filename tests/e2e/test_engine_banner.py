"""The engine banner in a real browser: a real dockerd goes away and comes back.

The server of this module runs on a private dockerd (tests/integration/second_engine.py), so
stopping it disturbs nobody. Four pages stay open (English and Chinese, 1440 px and 375 px):
the banner appears on each without a reload when the engine stops, the instance reads Unknown,
and the banner goes away by itself when the engine answers again.
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
    ensure_instance,
    no_sideways_scroll,
    own_server,
    sign_in,
    t,
)
from tests.integration.second_engine import SecondEngine, second_engine

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "keeper"
NAME = "banner-web"
COMPOSE = "services:\n  web:\n    image: stackhub-test/web:1\n    stop_grace_period: 1s\n"
expect.set_options(timeout=WAIT)
TEXTS = {
    "en-US": ("The Docker engine is not reachable", "actions are refused until it is back",
              "Unknown"),
    "zh-CN": ("无法连接 Docker 引擎", "操作会被拒绝", "未知"),
}
errors: list[str] = []


@pytest.fixture(scope="module")
def engine() -> Iterator[SecondEngine]:
    with second_engine() as private:
        yield private


@pytest.fixture(scope="module")
def banner_server(tmp_path_factory: pytest.TempPathFactory,
                  engine: SecondEngine) -> Iterator[Server]:
    """A server on the private engine, with an admin and one running instance."""
    # the server (SDK and Compose) uses the private engine
    with own_server(tmp_path_factory, "engine", USER, store=False,
                    env={"DOCKER_HOST": engine.host}) as srv:
        ensure_instance(srv, NAME, {"kind": "compose", "compose": COMPOSE})
        yield srv


@pytest.fixture(scope="module")
def signed_in(browser: Any, banner_server: Server) -> dict[str, Any]:
    return sign_in(browser, banner_server, USER)


def test_the_banner_follows_the_engine_in_both_languages_and_sizes(
        open_page: Any, banner_server: Server, engine: SecondEngine, shots: Path) -> None:
    pages: dict[tuple[str, int], Any] = {}
    for locale in TEXTS:
        for viewport in (DESKTOP, PHONE):
            page = open_page(viewport, locale)
            page.goto(f"{banner_server.url}/apps/{NAME}")
            expect(page.locator(t("instance-status"))).to_have_attribute("data-status", "running")
            pages[(locale, viewport["width"])] = page
    for page in pages.values():
        expect(page.locator(t("engine-banner"))).to_have_count(0)

    engine.stop()
    try:
        for (locale, width), page in pages.items():
            title, body, unknown = TEXTS[locale]
            banner = page.locator(t("engine-banner"))
            expect(banner).to_be_visible()  # pushed over the websocket: no reload
            expect(banner).to_contain_text(title)
            expect(banner).to_contain_text(body)
            status = page.locator(t("instance-status"))
            expect(status).to_have_attribute("data-status", "unknown")
            expect(status).to_contain_text(unknown)
            box = banner.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
            if width == PHONE["width"]:
                no_sideways_scroll(page)
            page.screenshot(path=str(shots / f"40-engine-down-{locale}-{width}.png"),
                            animations="disabled")
        # a page opened during the outage shows it at once too
        fresh = pages[("en-US", DESKTOP["width"])]
        fresh.goto(f"{banner_server.url}/activity")
        expect(fresh.locator(t("engine-banner"))).to_be_visible()
    finally:
        engine.wait_stopped()
        engine.start()
    for page in pages.values():
        expect(page.locator(t("engine-banner"))).to_have_count(0)
    expect(pages[("zh-CN", PHONE["width"])].locator(t("instance-status"))).to_have_attribute(
        "data-status", "running")
    assert not errors, errors
