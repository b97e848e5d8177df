"""Kept data in a real browser (issue 17, item 11): listed after a removal, reused, purged.

English and Chinese, 375 px and 1440 px. The module runs its own server with one instance
installed and removed (data kept) before the tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    APP,
    DESKTOP,
    PHONE,
    STORE,
    STORE_APP,
    WAIT,
    Server,
    ensure_instance,
    own_server,
    sign_in,
    t,
    wait_operation,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "keeper2"
PIN_LOCALE = True  # open_page stores the console language as a user would
NAME = "kept-e2e"
expect.set_options(timeout=WAIT)


@pytest.fixture(scope="module")
def kept_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with own_server(tmp_path_factory, "kept", USER) as srv:
        ensure_instance(srv, NAME, STORE_APP)
        (srv.data / "appdata" / NAME / "notes.txt").write_text("keep me\n")
        removed = srv.api("DELETE", f"/api/instances/{NAME}", params={"purge": "false"})
        assert removed.status_code == 202, removed.text
        assert wait_operation(srv, removed.json()["operation"]["id"])["state"] == "succeeded"
        yield srv


@pytest.fixture(scope="module")
def signed_in(browser: Any, kept_server: Server) -> dict[str, Any]:
    return sign_in(browser, kept_server, USER)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["375", "1440"])
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"], ids=["en", "zh"])
def test_kept_data_is_listed_with_its_app_and_size(open_page: Any, kept_server: Server,
                                                   shots: Path, viewport: dict[str, int],
                                                   locale: str) -> None:
    page = open_page(viewport, locale)
    page.goto(f"{kept_server.url}/apps")
    card = page.locator(t(f"kept-{NAME}"))
    expect(card).to_contain_text(f"{STORE}/{APP}")
    expect(page.locator(t("kept-data"))).to_contain_text(
        "保留的数据" if locale.startswith("zh") else "Kept data")
    expect(page.locator(t(f"kept-install-{NAME}"))).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= viewport["width"], f"the page scrolls sideways at {viewport['width']} px"
    page.screenshot(path=str(shots / f"17-kept-data-{locale}-{viewport['width']}.png"))


def test_install_again_reuses_the_data_and_purge_deletes_it(open_page: Any,
                                                            kept_server: Server) -> None:
    page = open_page(DESKTOP, "en-US")
    page.goto(f"{kept_server.url}/apps")
    page.click(t(f"kept-install-{NAME}"))
    page.wait_for_url(re.compile(rf"/store/{STORE}/{APP}\?.*name={NAME}"))
    expect(page.locator(t("install-name"))).to_have_value(NAME)
    page.click(t("install-review"))
    expect(page.locator(t("install-reuses-data"))).to_contain_text(NAME)
    page.goto(f"{kept_server.url}/apps")
    page.click(t(f"kept-purge-{NAME}"))
    page.click(t("kept-purge-confirm"))
    expect(page.locator(t(f"kept-{NAME}"))).to_have_count(0)
    assert not (kept_server.data / "appdata" / NAME).exists()
    assert kept_server.api("GET", "/api/kept-data").json() == []
    assert kept_server.api("GET", "/api/instances").json() == [], "nothing was installed"
