"""App dependencies in a real browser (issue 16, item 3): named, installed first, then used.

English and Chinese, 375 px and 1440 px. The module runs its own server with the Umbrel-style
dependency fixtures (tests/fixtures/deps) as a local store.
"""

from __future__ import annotations

import shutil
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
    free_port,
    no_sideways_scroll,
    own_server,
    remove_instance,
    sign_in,
    t,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "depender"
PIN_LOCALE = True  # open_page stores the console language as a user would
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "deps"
expect.set_options(timeout=WAIT)


@pytest.fixture(scope="module")
def deps_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with own_server(tmp_path_factory, "deps", USER, store=False) as srv:
        store = tmp_path_factory.mktemp("deps-store")
        for app in ("dep-node", "dep-client"):
            shutil.copytree(FIXTURES / app, store / app)
            port = str(free_port())
            for name in ("umbrel-app.yml", "docker-compose.yml"):
                path = store / app / name
                path.write_text(path.read_text().replace("__PORT__", port))
        added = srv.api("POST", "/api/stores", json={"name": "dps", "source": str(store),
                                                     "local": True})
        assert added.status_code == 201, added.text
        try:
            yield srv
        finally:  # dependents first: the node refuses to go while the client uses it
            remove_instance(srv, "dep-client")
            remove_instance(srv, "dep-node")


@pytest.fixture(scope="module")
def signed_in(browser: Any, deps_server: Server) -> dict[str, Any]:
    return sign_in(browser, deps_server, USER)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["375", "1440"])
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"], ids=["en", "zh"])
def test_a_missing_dependency_is_named_with_an_offer(open_page: Any, deps_server: Server,
                                                     shots: Path, viewport: dict[str, int],
                                                     locale: str) -> None:
    # whatever ran before (the install test, a rerun): start from a box without the dependency
    remove_instance(deps_server, "dep-client")
    remove_instance(deps_server, "dep-node")
    assert deps_server.api("GET", "/api/instances/dep-node").status_code == 404
    page = open_page(viewport, locale)
    page.goto(f"{deps_server.url}/store/dps/dep-client")
    page.click(t("install-button"))
    alert = page.locator(t("install-missing-deps"))
    expect(alert).to_contain_text("dep-node")
    expect(alert).to_contain_text("需要先安装" if locale.startswith("zh") else "installed first")
    expect(page.locator(t("install-deps"))).to_be_visible()
    if viewport is PHONE:
        no_sideways_scroll(page)
    page.screenshot(path=str(shots / f"16-deps-missing-{locale}-{viewport['width']}.png"))


def test_installing_the_dependencies_first_then_the_app(open_page: Any,
                                                        deps_server: Server,
                                                        shots: Path) -> None:
    page = open_page(DESKTOP, "en-US")
    page.goto(f"{deps_server.url}/store/dps/dep-client")
    page.click(t("install-button"))
    page.click(t("install-deps"))
    expect(page.locator(t("install-missing-deps"))).to_have_count(0, timeout=240_000)
    node = deps_server.api("GET", "/api/instances/dep-node")
    assert node.status_code == 200 and node.json()["status"] == "running", node.text
    page.click(t("install-review"))
    uses = page.locator(t("install-dependencies"))
    expect(uses).to_contain_text("dep-node")
    page.screenshot(path=str(shots / "16-deps-review-en-US-1440.png"))
    page.click(t("install-confirm"))
    expect(page.locator(t("install-done"))).to_be_visible(timeout=240_000)
    client = deps_server.api("GET", "/api/instances/dep-client").json()
    assert client["status"] == "running", client
