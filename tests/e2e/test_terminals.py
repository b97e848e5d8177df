"""Terminals in a real browser: type in a container terminal and read the output; the host
terminal asks for the password, then runs a shell. English at 1440 px, Chinese at 375 px."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import DIST, Server, signed_in_state

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "operator"
PASSWORD = "correct horse battery staple"
WAIT = 30_000  # ms
NAME = "term-web"
COMPOSE = """\
services:
  web:
    image: stackhub-test/web:1
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    stop_grace_period: 1s
  worker:
    image: stackhub-test/web:1
    command: ["sleep", "100000"]
    stop_grace_period: 1s
"""
CASES = [("en-US", {"width": 1440, "height": 900}, "Connected", "Host terminal"),
         ("zh-CN", {"width": 375, "height": 812}, "已连接", "主机终端")]


def t(name: str) -> str:
    return f'[data-test="{name}"]'


@pytest.fixture(scope="module")
def term_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the host terminal on, an admin and a running two-service instance."""
    if not DIST.is_file():
        pytest.fail("the web console is not built: run scripts/build-web (scripts/test does)")
    srv = Server(tmp_path_factory.mktemp("e2e-terminals") / "data")
    with pytest.MonkeyPatch.context() as env:
        env.setitem(os.environ, "STACKHUB_HOST_TERMINAL", "1")
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
        srv.api("DELETE", f"/api/instances/{NAME}", params={"purge": "true"})
        deadline = time.monotonic() + 60
        while srv.api("GET", f"/api/instances/{NAME}").status_code != 404 \
                and time.monotonic() < deadline:
            time.sleep(0.3)
        srv.stop()


def type_line(page: Any, text: str) -> None:
    """Type a line into the focused terminal."""
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def no_sideways_scroll(page: Any, width: int) -> None:
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"the page is {scroll}px wide at {width}px"


@pytest.mark.parametrize(("lang", "viewport", "connected", "nav"), CASES)
def test_container_and_host_terminals(term_server: Server, browser: Any, shots: Any, lang: str,
                                      viewport: dict[str, int], connected: str,
                                      nav: str) -> None:
    state = signed_in_state(browser, term_server.url, USER, PASSWORD, viewport, WAIT)
    ctx = browser.new_context(viewport=viewport, locale=lang, storage_state=state)
    ctx.add_init_script(f"localStorage.setItem('stackhub.locale', '{lang}')")
    try:
        page = ctx.new_page()
        page.set_default_timeout(WAIT)
        page.goto(f"{term_server.url}/apps/{NAME}?tab=terminal")
        page.click(t("terminal-service"))
        page.click(".n-base-select-option:has-text('worker')")
        page.click(t("terminal-open"))
        expect(page.locator(t("terminal-state"))).to_have_text(connected)
        page.click(t("terminal-screen"))
        type_line(page, "echo typed-$((6*7)) $(cat /proc/1/cmdline | tr '\\0' ' ')")
        rows = page.locator(f"{t('terminal-screen')} .xterm-rows")
        expect(rows).to_contain_text("typed-42 sleep 100000")  # ran in the worker's container
        no_sideways_scroll(page, viewport["width"])
        page.screenshot(path=str(shots / f"terminal-container-{lang}-{viewport['width']}.png"))
        type_line(page, "exit 4")
        expect(page.locator(t("terminal-state"))).to_contain_text("4")

        # the host terminal: in the nav for admins when enabled; the password again first
        page.goto(f"{term_server.url}/host-terminal")
        expect(page.locator("h1")).to_have_text(nav)
        page.fill(f"{t('host-terminal-password')} input", "not the password")
        page.click(t("host-terminal-open"))
        expect(page.locator(t("host-terminal-error"))).to_be_visible()
        page.fill(f"{t('host-terminal-password')} input", PASSWORD)
        page.click(t("host-terminal-open"))
        expect(page.locator(t("terminal-state"))).to_have_text(connected)
        page.click(t("terminal-screen"))
        type_line(page, "echo host-$((2+3))-$(id -u)")
        expect(page.locator(f"{t('terminal-screen')} .xterm-rows")).to_contain_text("host-5-0")
        no_sideways_scroll(page, viewport["width"])
        page.screenshot(path=str(shots / f"terminal-host-{lang}-{viewport['width']}.png"))
    finally:
        ctx.close()
    audit = [e["action"] for e in term_server.api("GET", "/api/audit",
                                                  params={"limit": 50}).json()]
    assert "terminal.open" in audit and "host_terminal.open" in audit
