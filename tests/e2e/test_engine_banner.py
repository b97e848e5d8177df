"""The engine banner in a real browser: a real dockerd goes away and comes back.

The server of this module runs on a private dockerd (tests/integration/second_engine.py), so
stopping it disturbs nobody. Four pages stay open (English and Chinese, 1440 px and 375 px):
the banner appears on each without a reload when the engine stops, the instance reads Unknown,
and the banner goes away by itself when the engine answers again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import DIST, Server, signed_in_state
from tests.integration.second_engine import SecondEngine, second_engine

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "keeper"
PASSWORD = "correct horse battery staple"
WAIT = 30_000  # ms
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 375, "height": 812}
NAME = "banner-web"
COMPOSE = "services:\n  web:\n    image: stackhub-test/web:1\n    stop_grace_period: 1s\n"
expect.set_options(timeout=WAIT)
TEXTS = {
    "en-US": ("The Docker engine is not reachable", "actions are refused until it is back",
              "Unknown"),
    "zh-CN": ("无法连接 Docker 引擎", "操作会被拒绝", "未知"),
}


def t(name: str) -> str:
    return f'[data-test="{name}"]'


@pytest.fixture(scope="module")
def engine() -> Iterator[SecondEngine]:
    with second_engine() as private:
        yield private


@pytest.fixture(scope="module")
def banner_server(tmp_path_factory: pytest.TempPathFactory,
                  engine: SecondEngine) -> Iterator[Server]:
    """A server on the private engine, with an admin and one running instance."""
    if not DIST.is_file():
        pytest.fail("the web console is not built: run scripts/build-web (scripts/test does)")
    srv = Server(tmp_path_factory.mktemp("e2e-engine") / "data")
    with pytest.MonkeyPatch.context() as env:  # the server (SDK and Compose) uses the private one
        env.setitem(os.environ, "DOCKER_HOST", engine.host)
        srv.start()
    try:
        made = srv.api("POST", "/api/auth/setup", json={
            "setup_token": srv.setup_token, "username": USER, "password": PASSWORD})
        assert made.status_code in (200, 201), made.text
        accepted = srv.api("POST", "/api/instances", json={
            "source": {"kind": "compose", "compose": COMPOSE}, "name": NAME})
        assert accepted.status_code == 202, accepted.text
        op_id = accepted.json()["operation"]["id"]
        deadline = time.monotonic() + 120
        while (op := srv.api("GET", f"/api/operations/{op_id}").json())["state"] == "running":
            assert time.monotonic() < deadline, op
            time.sleep(0.3)
        assert op["state"] == "succeeded", op
        yield srv
    finally:
        srv.stop()


def no_sideways_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide at {PHONE['width']}px"
    inner = page.evaluate("""() => [...document.querySelectorAll('.n-layout-scroll-container')]
        .map((el) => el.scrollWidth - el.clientWidth)""")
    assert max(inner, default=0) <= 0, f"a scrolling area overflows sideways by {inner}px"


def test_the_banner_follows_the_engine_in_both_languages_and_sizes(
        browser: Any, banner_server: Server, engine: SecondEngine, shots: Path) -> None:
    state = signed_in_state(browser, banner_server.url, USER, PASSWORD, DESKTOP, WAIT)
    pages: dict[tuple[str, int], Any] = {}
    contexts = []
    errors: list[str] = []
    try:
        for locale in TEXTS:
            for viewport in (DESKTOP, PHONE):
                phone = viewport is PHONE
                ctx = browser.new_context(viewport=viewport, locale=locale, storage_state=state,
                                          is_mobile=phone, has_touch=phone,
                                          device_scale_factor=2 if phone else 1)
                ctx.set_default_timeout(WAIT)
                contexts.append(ctx)
                page = ctx.new_page()
                page.on("pageerror", lambda err: errors.append(str(err)))
                page.goto(f"{banner_server.url}/apps/{NAME}")
                expect(page.locator(t("instance-status"))).to_have_attribute(
                    "data-status", "running")
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
                page.wait_for_timeout(300)
                page.screenshot(path=str(shots / f"40-engine-down-{locale}-{width}.png"))
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
    finally:
        for ctx in contexts:
            ctx.close()
