"""Terminals in a real browser: type in a container terminal and read the output; the host
terminal asks for the password, then runs a shell. English at 1440 px, Chinese at 375 px."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import (
    DESKTOP,
    PASSWORD,
    PHONE,
    Server,
    ensure_instance,
    own_server,
    sign_in,
    t,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
USER = "operator"
PIN_LOCALE = True  # open_page stores the console language as a user would
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
CASES = [("en-US", DESKTOP, "Connected", "Host terminal"),
         ("zh-CN", PHONE, "已连接", "主机终端")]


@pytest.fixture(scope="module")
def term_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the host terminal on, an admin and a running two-service instance."""
    with own_server(tmp_path_factory, "terminals", USER, store=False,
                    env={"STACKHUB_HOST_TERMINAL": "1"}) as srv:
        ensure_instance(srv, NAME, {"kind": "compose", "compose": COMPOSE})
        yield srv


@pytest.fixture(scope="module")
def signed_in(browser: Any, term_server: Server) -> dict[str, Any]:
    return sign_in(browser, term_server, USER)


def type_line(page: Any, text: str) -> None:
    """Type a line into the focused terminal."""
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def no_sideways_scroll(page: Any, width: int) -> None:
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"the page is {scroll}px wide at {width}px"


@pytest.mark.parametrize(("lang", "viewport", "connected", "nav"), CASES)
def test_container_and_host_terminals(term_server: Server, open_page: Any, shots: Path,
                                      lang: str, viewport: dict[str, int], connected: str,
                                      nav: str) -> None:
    page = open_page(viewport, lang)
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
    audit = [e["action"] for e in term_server.api("GET", "/api/audit",
                                                  params={"limit": 50}).json()]
    assert "terminal.open" in audit and "host_terminal.open" in audit
