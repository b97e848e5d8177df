"""The store's front rows in a real browser (issue 17, item 15): featured and recently updated.

English and Chinese, 375 px and 1440 px, on the module's own server and a local store whose
featured-apps.json features one app and whose second sync brings a new version of another.
"""

from __future__ import annotations

import re
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
    own_server,
    sign_in,
    t,
)
from tests.unit.catalog.storekit import write_app

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "browser"
PIN_LOCALE = True  # open_page stores the console language as a user would
expect.set_options(timeout=WAIT)


@pytest.fixture(scope="module")
def rows_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with own_server(tmp_path_factory, "rows", USER, store=False) as srv:
        store = srv.data.parent / "store"
        for app in ("alpha", "beta", "gamma"):
            write_app(store, app)
        (store / "featured-apps.json").write_text('[{"appid": "beta"}]')
        added = srv.api("POST", "/api/stores", json={"name": "rows", "source": str(store),
                                                     "local": True})
        assert added.status_code == 201 and added.json()["app_count"] == 3, added.text
        write_app(store, "gamma", version="2.0.0")
        synced = srv.api("POST", "/api/stores/rows/sync")
        assert synced.status_code == 200 and synced.json()["changed"], synced.text
        yield srv


@pytest.fixture(scope="module")
def signed_in(browser: Any, rows_server: Server) -> dict[str, Any]:
    return sign_in(browser, rows_server, USER)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["375", "1440"])
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"], ids=["en", "zh"])
def test_featured_and_recently_updated_rows(open_page: Any, rows_server: Server, shots: Path,
                                            viewport: dict[str, int], locale: str) -> None:
    zh = locale.startswith("zh")
    page = open_page(viewport, locale)
    page.goto(f"{rows_server.url}/store")
    featured = page.locator(t("store-row-featured"))
    expect(featured).to_contain_text("精选" if zh else "Featured")
    expect(featured.locator(t("row-card-rows/beta"))).to_be_visible()
    expect(featured.locator('[data-test^="row-card-"]')).to_have_count(1)
    recent = page.locator(t("store-row-recent"))
    expect(recent).to_contain_text("最近更新" if zh else "Recently updated")
    expect(recent.locator('[data-test^="row-card-"]')).to_have_count(1)
    gamma = recent.locator(t("row-card-rows/gamma"))
    expect(gamma).to_contain_text("更新" if zh else "updated")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"], f"the page scrolls sideways at {viewport['width']} px"
    page.screenshot(path=str(shots / f"17-store-rows-{locale}-{viewport['width']}.png"))
    # a search hides the rows; clearing it brings them back
    page.fill(t("store-search"), "alpha")
    expect(featured).to_be_hidden()
    page.fill(t("store-search"), "")
    expect(page.locator(t("store-row-featured"))).to_be_visible()
    page.locator(t("row-card-rows/beta")).click()
    page.wait_for_url(re.compile(r"/store/rows/beta$"))
