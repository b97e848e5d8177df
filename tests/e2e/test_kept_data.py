"""Kept data in a real browser (issue 17, item 11): listed after a removal, reused, purged.

English and Chinese, 375 px and 1440 px. The module runs its own server with one instance
installed and removed (data kept) before the tests.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    APP,
    DIST,
    STORE,
    Server,
    free_port,
    remove_instances,
    signed_in_state,
    write_store,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "keeper2"
PASSWORD = "correct horse battery staple"
NAME = "kept-e2e"
WAIT = 30_000  # ms
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 375, "height": 812}
expect.set_options(timeout=WAIT)


def t(name: str) -> str:
    return f'[data-test="{name}"]'


def wait_operation(srv: Server, op_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        op: dict[str, Any] = srv.api("GET", f"/api/operations/{op_id}").json()
        if op["state"] != "running":
            return op
        assert time.monotonic() < deadline, op
        time.sleep(0.3)


@pytest.fixture(scope="module")
def kept_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not DIST.is_file():
        pytest.fail("the web console is not built: run scripts/build-web (scripts/test does)")
    base = tmp_path_factory.mktemp("e2e-kept")
    srv = Server(base / "data")
    srv.start()
    try:
        made = srv.api("POST", "/api/auth/setup", json={
            "setup_token": srv.setup_token, "username": USER, "password": PASSWORD})
        assert made.status_code in (200, 201), made.text
        store = write_store(base / "store", free_port())
        added = srv.api("POST", "/api/stores", json={"name": STORE, "source": str(store),
                                                     "local": True})
        assert added.status_code == 201, added.text
        accepted = srv.api("POST", "/api/instances", json={
            "source": {"kind": "catalog", "ref": f"{STORE}/{APP}"}, "name": NAME})
        assert accepted.status_code == 202, accepted.text
        assert wait_operation(srv, accepted.json()["operation"]["id"])["state"] == "succeeded"
        (srv.data / "appdata" / NAME / "notes.txt").write_text("keep me\n")
        removed = srv.api("DELETE", f"/api/instances/{NAME}", params={"purge": "false"})
        assert removed.status_code == 202, removed.text
        assert wait_operation(srv, removed.json()["operation"]["id"])["state"] == "succeeded"
        yield srv
    finally:
        remove_instances(srv)
        srv.stop()


@pytest.fixture(scope="module")
def signed_in(browser: Any, kept_server: Server) -> dict[str, Any]:
    return signed_in_state(browser, kept_server.url, USER, PASSWORD, DESKTOP, WAIT)


def open_page(browser: Any, signed_in: dict[str, Any], viewport: dict[str, int],
              locale: str) -> tuple[Any, Any]:
    ctx = browser.new_context(viewport=viewport, locale=locale, storage_state=signed_in)
    page = ctx.new_page()
    page.set_default_timeout(WAIT)
    lang = "zh-CN" if locale.startswith("zh") else "en"
    page.add_init_script(f"localStorage.setItem('stackhub.locale', '{lang}')")
    return ctx, page


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["375", "1440"])
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"], ids=["en", "zh"])
def test_kept_data_is_listed_with_its_app_and_size(browser: Any, signed_in: dict[str, Any],
                                                   kept_server: Server, shots: Path,
                                                   viewport: dict[str, int], locale: str) -> None:
    ctx, page = open_page(browser, signed_in, viewport, locale)
    try:
        page.goto(f"{kept_server.url}/apps")
        card = page.locator(t(f"kept-{NAME}"))
        expect(card).to_contain_text(f"{STORE}/{APP}")
        expect(page.locator(t("kept-data"))).to_contain_text(
            "保留的数据" if locale.startswith("zh") else "Kept data")
        expect(page.locator(t(f"kept-install-{NAME}"))).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"], f"the page scrolls sideways at {viewport['width']} px"
        page.screenshot(path=str(shots / f"17-kept-data-{locale}-{viewport['width']}.png"))
    finally:
        ctx.close()


def test_install_again_reuses_the_data_and_purge_deletes_it(
        browser: Any, signed_in: dict[str, Any], kept_server: Server) -> None:
    ctx, page = open_page(browser, signed_in, DESKTOP, "en-US")
    try:
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
    finally:
        ctx.close()
    assert not (kept_server.data / "appdata" / NAME).exists()
    assert kept_server.api("GET", "/api/kept-data").json() == []
    assert kept_server.api("GET", "/api/instances").json() == [], "nothing was installed"
