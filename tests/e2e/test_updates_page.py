"""The Updates page in a real browser (issue 13): every available update on one page with its
kind, versions and the store's release notes, an Update button with progress, and an update an
upgrade-path rule blocks refused with the intermediate version named and nothing changed.

English and Chinese, 375 px and 1440 px. The module runs its own server and local store.
"""

from __future__ import annotations

import json
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
    free_port,
    no_sideways_scroll,
    own_server,
    sign_in,
    t,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "updater"
PIN_LOCALE = True  # open_page stores the console language as a user would
STORE = "upde2e"
NEW_IMAGE = IMAGE.rsplit(":", 1)[0] + ":2"
NOTES = {"en": "Adds **sharing** of notes.", "zh-CN": "新增笔记**分享**功能。"}
expect.set_options(timeout=WAIT)


def write_app(root: Path, app: str, version: str, image: str, port: int,
              **extra: Any) -> None:
    """One app of the module's store (both services answer on port 80)."""
    folder = root / "apps" / app
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"format": "stackhub/v1", "id": app, "name": app.title(), "version": version,
                "title": {"en": app.title(), "zh-CN": app.title()}, "category": ["utilities"],
                "main": {"service": "web", "port": 80},
                "parameters": [{"name": "WEB_PORT", "type": "port", "default": port}], **extra}
    (folder / "stackhub-app.yaml").write_text(json.dumps(manifest))
    (folder / "compose.yaml").write_text(
        f"services:\n  web:\n    image: {image}\n    ports: ['${{WEB_PORT}}:80']\n"
        "    stop_grace_period: 1s\n")


@pytest.fixture(scope="module")
def update_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"STACKHUB_UPDATE_STABILITY": "1", "STACKHUB_UPDATE_CHECK_INTERVAL": "0"}
    with own_server(tmp_path_factory, "updates", USER, store=False, env=env) as srv:
        root = tmp_path_factory.mktemp("upd-store")
        ports = (free_port(), free_port())
        write_app(root, "alpha", "1.0.0", IMAGE, ports[0])
        write_app(root, "beta", "1.0.0", IMAGE, ports[1])
        added = srv.api("POST", "/api/stores", json={"name": STORE, "source": str(root),
                                                     "local": True})
        assert added.status_code == 201, added.text
        ensure_instance(srv, "up-alpha", {"kind": "catalog", "ref": f"{STORE}/alpha"})
        ensure_instance(srv, "up-beta", {"kind": "catalog", "ref": f"{STORE}/beta"})
        write_app(root, "alpha", "2.0.0", NEW_IMAGE, ports[0], release_notes=NOTES)
        write_app(root, "beta", "3.0.0", NEW_IMAGE, ports[1], update={"min_from": "2.0.0"})
        assert srv.api("POST", f"/api/stores/{STORE}/sync").status_code == 200
        found = srv.api("GET", "/api/updates").json()
        assert {f["instance"] for f in found} == {"up-alpha", "up-beta"}, found
        yield srv


@pytest.fixture(scope="module")
def signed_in(browser: Any, update_server: Server) -> dict[str, Any]:
    return sign_in(browser, update_server, USER)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["375", "1440"])
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"], ids=["en", "zh"])
def test_every_update_is_listed_with_its_release_notes(open_page: Any, update_server: Server,
                                                       shots: Path, viewport: dict[str, int],
                                                       locale: str) -> None:
    zh = locale.startswith("zh")
    page = open_page(viewport, locale)
    page.goto(f"{update_server.url}/updates")
    expect(page.locator("h1")).to_have_text("更新" if zh else "Updates")
    alpha = page.locator(t("update-up-alpha"))
    expect(alpha.locator(t("update-kind"))).to_have_text("新版本" if zh else "New version")
    expect(alpha.locator(t("update-versions"))).to_contain_text("1.0.0 → 2.0.0")
    notes = alpha.locator(t("release-notes"))
    expect(notes).to_contain_text("更新说明" if zh else "Release notes")
    expect(notes.locator("strong")).to_have_text("分享" if zh else "sharing")
    beta = page.locator(t("update-up-beta"))
    expect(beta.locator(t("update-blocked"))).to_contain_text(
        "请先更新到中间版本 2.0.0" if zh else "first update it to the intermediate version 2.0.0")
    expect(beta).to_contain_text("商店没有提供" if zh else "gives no release notes")
    expect(alpha.locator(t("update-start"))).to_be_visible()
    no_sideways_scroll(page, viewport["width"])
    page.screenshot(path=str(shots / f"13-updates-{locale}-{viewport['width']}.png"),
                    full_page=True)


def test_update_button_shows_progress_and_a_blocked_one_changes_nothing(
        open_page: Any, update_server: Server) -> None:
    page = open_page(DESKTOP, "en-US")
    page.goto(f"{update_server.url}/updates")
    beta = page.locator(t("update-up-beta"))
    beta.locator(t("update-start")).click()
    expect(beta.locator(t("error"))).to_contain_text(
        "first update it to the intermediate version 2.0.0, then to 3.0.0; nothing was changed")
    after = update_server.api("GET", "/api/instances/up-beta").json()
    assert (after["version"], after["status"]) == ("1.0.0", "running")
    ops = update_server.api("GET", "/api/operations", params={"instance": "up-beta"}).json()
    assert [o["kind"] for o in ops["items"]] == ["install"]

    alpha = page.locator(t("update-up-alpha"))
    alpha.locator(t("update-start")).click()
    expect(alpha.locator(t("update-progress"))).to_be_visible()
    expect(alpha).to_have_count(0, timeout=120_000)  # done: the list no longer holds it
    updated = update_server.api("GET", "/api/instances/up-alpha").json()
    assert (updated["version"], updated["update_available"]) == ("2.0.0", False)
    ops = update_server.api("GET", "/api/operations", params={"instance": "up-alpha"}).json()
    assert (ops["items"][0]["kind"], ops["items"][0]["state"]) == ("update", "succeeded")
    expect(page.locator(t("update-up-beta"))).to_be_visible()
