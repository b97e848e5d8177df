"""StackHub's sign-in in front of an app (forward auth), end to end through the real Caddy.

One server with the LAN base ``home.lan`` and an app whose CGI script prints the identity
headers and cookies it receives, so the tests see exactly what the app gets. Requests go to
127.0.0.1 with the name as SNI and Host, trusting the internal CA's root.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import psutil
import pytest

from tests.integration.conftest import Server, free_port
from tests.integration.gateway_env import (
    AcmeLab,
    gateway_server,
    internal_root,
    running_lab,
    web_app_source,
)

pytestmark = pytest.mark.integration
BASE = "home.lan"
PASSWORD = "correct horse battery staple 9"
SCRIPT = ("mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\n"
          "echo \"user=$$HTTP_REMOTE_USER groups=$$HTTP_REMOTE_GROUPS cookie=$$HTTP_COOKIE\"\\n'"
          " >/www/cgi-bin/who && chmod +x /www/cgi-bin/who && exec httpd -f -p 80 -h /www")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeLab]:
    yield from running_lab(tmp_path_factory)


def install_who(srv: Server) -> None:
    """Install the app ``who`` (the web-app fixture running SCRIPT) and wait until it ran."""
    answer = srv.api("POST", "/api/instances", json={
        "source": web_app_source(SCRIPT), "name": "who",
        "values": {"WEB_PORT": str(free_port()), "GREETING": "hi"}})
    assert answer.status_code == 202, answer.text
    assert srv.wait_operation(answer.json()["operation"]["id"])["state"] == "succeeded"


@pytest.fixture(scope="module")
def gw(lab: AcmeLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the gateway on high ports, the app ``who``, users ann (admin), bob."""
    with gateway_server(tmp_path_factory.mktemp("protect"), lab.env(), BASE, install_who) as srv:
        for name, role in (("ann", "admin"), ("bob", "member")):
            made = srv.api("POST", "/api/users", json={"username": name, "password": PASSWORD,
                                                       "role": role})
            assert made.status_code == 201, made.text
        yield srv


@pytest.fixture(scope="module")
def root(gw: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return internal_root(gw, tmp_path_factory.mktemp("ca"))


class Browser:
    """Requests through the gateway with cookies kept per host (as a browser does)."""

    def __init__(self, lab: AcmeLab, root: Path) -> None:
        self.lab = lab
        self.context = ssl.create_default_context(cafile=str(root))
        self.jar: dict[str, dict[str, str]] = {}

    def request(self, method: str, url: str, headers: dict[str, str] | None = None,
                **kwargs: Any) -> httpx.Response:
        parts = urlsplit(url)
        host = parts.hostname or ""
        cookies = "; ".join(f"{k}={v}" for k, v in self.jar.get(host, {}).items())
        sent = {"Host": parts.netloc, **({"Cookie": cookies} if cookies else {}),
                **(headers or {})}
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        with httpx.Client(verify=self.context, timeout=30) as client:
            answer = client.request(method, f"https://127.0.0.1:{self.lab.https_port}{path}",
                                    headers=sent, extensions={"sni_hostname": host}, **kwargs)
        for header in answer.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if value in ("", '""'):
                self.jar.get(host, {}).pop(name, None)
            else:
                self.jar.setdefault(host, {})[name] = value
        return answer

    def sign_in(self, user: str) -> None:
        console = f"https://console.{BASE}:{self.lab.https_port}"
        answer = self.request("POST", f"{console}/api/auth/login",
                              json={"username": user, "password": PASSWORD})
        assert answer.status_code == 200, answer.text


def app_url(lab: AcmeLab, path: str = "/cgi-bin/who") -> str:
    return f"https://who.{BASE}:{lab.https_port}{path}"


def follow_sign_in(browser: Browser, answer: httpx.Response) -> httpx.Response:
    """Follow the redirects of the hand-off (console, ticket) by hand; return the last one."""
    for _ in range(4):
        if answer.status_code != 302:
            return answer
        location = answer.headers["location"]
        if location.startswith("/"):
            base = str(answer.request.headers["host"])
            location = f"https://{base}{location}"
        answer = browser.request("GET", location)
    return answer


def host_address() -> str:
    """Return one of this machine's addresses other machines could use (not loopback)."""
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if entry.family == socket.AF_INET and not entry.address.startswith("127."):
                return str(entry.address)
    pytest.fail("this machine has no non-loopback IPv4 address")


def direct(address: str, port: int) -> int | None:
    """GET http://address:port/ straight to the app; its status, or None if nothing answers."""
    try:
        return httpx.get(f"http://{address}:{port}/cgi-bin/who", timeout=5).status_code
    except httpx.TransportError:
        return None


def test_protect_closes_the_app_port_to_other_machines(gw: Server, lab: AcmeLab,
                                                       root: Path) -> None:
    port = gw.api("GET", "/api/instances/who").json()["ports"][0]["host_port"]
    address = host_address()
    assert direct(address, port) == 200  # before: anyone reaching the box gets the app
    result = gw.cli("app", "protect", "who", "--json")
    assert result.returncode == 0, result.stderr
    read = json.loads(result.stdout)
    assert read["protected"] is True and read["local_port"] == port and read["warning"] is None
    # an operation on the runner: journaled with its steps, in the activity list and audit
    op = gw.api("GET", f"/api/operations/{read['operation']}").json()
    assert (op["kind"], op["instance"], op["state"]) == ("protect", "who", "succeeded")
    assert [s["name"] for s in op["steps"]] == ["route", "publish"]
    listed = gw.cli("op", "list", "--instance", "who", "--json")
    assert read["operation"] in listed.stdout
    audit = [e for e in gw.api("GET", "/api/audit").json()
             if e["action"] == "app.protect"]
    assert audit[0]["details"] == {"protected": True, "operation": read["operation"]}
    assert direct(address, port) is None  # published on 127.0.0.1 only now
    assert direct("127.0.0.1", port) == 200  # where the gateway reaches it
    anonymous = Browser(lab, root).request("GET", app_url(lab))
    assert anonymous.status_code == 302  # the gateway still asks for the sign-in
    shown = gw.cli("app", "protect", "who")
    assert shown.returncode == 0 and "127.0.0.1 only" in shown.stdout
    off = gw.cli("app", "protect", "who", "--off", "--json")
    assert off.returncode == 0, off.stderr
    assert json.loads(off.stdout)["local_port"] is None
    assert direct(address, port) == 200  # restored on all interfaces


def test_protect_needs_sign_in_and_passes_the_signed_in_user(gw: Server, lab: AcmeLab,
                                                             root: Path) -> None:
    result = gw.cli("app", "protect", "who", "--json")
    assert result.returncode == 0, result.stderr
    read = json.loads(result.stdout)
    assert read["protected"] is True and f"who.{BASE}" in read["hosts"]
    assert read["local_port"] is not None and read["warning"] is None

    browser = Browser(lab, root)
    # unauthenticated, even claiming an identity: sent to the console's sign-in
    anonymous = browser.request("GET", app_url(lab), headers={"Remote-User": "ann",
                                                              "Remote-Groups": "admin"})
    assert anonymous.status_code == 302, anonymous.text
    expected = (f"https://console.{BASE}:{lab.https_port}/api/auth/gateway?rd="
                + quote(app_url(lab), safe=""))
    assert anonymous.headers["location"] == expected
    posted = browser.request("POST", app_url(lab), headers={"Remote-User": "ann"})
    assert posted.status_code == 401 and "user=" not in posted.text
    # the console sends a browser without a session to its sign-in page, coming back after
    login = browser.request("GET", expected)
    assert login.status_code == 302 and login.headers["location"].startswith("/login?next=")

    browser.sign_in("ann")
    final = follow_sign_in(browser, browser.request("GET", app_url(lab)))
    assert final.status_code == 200, final.text
    assert final.text.strip().startswith("user=ann groups=admin cookie=")
    assert "stackhub_gw" not in final.text  # the gateway cookie never reaches the app
    cookie = browser.jar[f"who.{BASE}"]["stackhub_gw"]
    assert cookie.startswith("shg_")

    # a spoofed identity from the signed-in browser is replaced, not passed on
    spoofed = browser.request("GET", app_url(lab), headers={"Remote-User": "mallory",
                                                            "Remote-Groups": "root"})
    assert spoofed.status_code == 200
    assert "mallory" not in spoofed.text and "root" not in spoofed.text
    assert "user=ann groups=admin" in spoofed.text

    # the gateway cookie does not open the console's API, nor another host
    api = browser.request("GET", f"https://console.{BASE}:{lab.https_port}/api/instances",
                          headers={"Cookie": f"stackhub_session={cookie}"})
    assert api.status_code == 401

    # signing out of the console ends the app's gateway session too
    session = browser.jar[f"console.{BASE}"]
    out = browser.request("POST", f"https://console.{BASE}:{lab.https_port}/api/auth/logout",
                          headers={"X-CSRF-Token": session["stackhub_csrf"],
                                   "Origin": f"https://console.{BASE}:{lab.https_port}"})
    assert out.status_code == 204, out.text
    after = browser.request("GET", app_url(lab))
    assert after.status_code == 302 and "/api/auth/gateway?rd=" in after.headers["location"]


def test_a_member_needs_a_grant(gw: Server, lab: AcmeLab, root: Path) -> None:
    assert gw.cli("app", "protect", "who").returncode == 0
    browser = Browser(lab, root)
    browser.sign_in("bob")
    refused = follow_sign_in(browser, browser.request("GET", app_url(lab)))
    assert refused.status_code == 403 and "bob may not open this app" in refused.text
    assert gw.api("PUT", "/api/users/bob/instances", json={"instances": ["who"]}) \
        .status_code == 200
    passed = follow_sign_in(browser, browser.request("GET", app_url(lab)))
    assert passed.status_code == 200 and "user=bob groups=member" in passed.text


def test_tickets_are_single_use_and_bound_to_the_host(gw: Server, lab: AcmeLab,
                                                      root: Path) -> None:
    assert gw.cli("app", "protect", "who").returncode == 0
    browser = Browser(lab, root)
    browser.sign_in("ann")
    start = browser.request("GET", app_url(lab))
    handoff = browser.request("GET", start.headers["location"])
    ticket_url = handoff.headers["location"]
    assert "/.stackhub/auth?ticket=" in ticket_url
    assert browser.request("GET", ticket_url).status_code == 302
    assert "stackhub_gw" in browser.jar[f"who.{BASE}"]
    other = Browser(lab, root)  # a replayed ticket gets no cookie
    replay = other.request("GET", ticket_url)
    assert replay.status_code == 302 and "/api/auth/gateway?rd=" in replay.headers["location"]
    assert "stackhub_gw" not in other.jar.get(f"who.{BASE}", {})


@pytest.mark.parametrize("rd", [
    "https://evil.example/", "http://who.home.lan/", "https://who.home.lan:1/",
    "https://ann@who.home.lan/", "javascript:alert(1)", "//evil.example/",
])
def test_no_open_redirect(gw: Server, lab: AcmeLab, root: Path, rd: str) -> None:
    browser = Browser(lab, root)
    answer = browser.request("GET", f"https://console.{BASE}:{lab.https_port}/api/auth/gateway",
                             params={"rd": rd})
    assert answer.status_code == 422, answer.text
    assert "location" not in answer.headers


def test_forward_endpoint_needs_the_gateway_token(gw: Server) -> None:
    answer = httpx.get(f"{gw.url}/api/auth/forward",
                       headers={"X-Forwarded-Host": f"who.{BASE}", "X-Forwarded-Uri": "/"})
    assert answer.status_code == 403


def test_protect_off_and_bad_input(gw: Server, lab: AcmeLab, root: Path) -> None:
    before = gw.api("GET", "/api/operations", params={"kind": "protect"}).json()["items"]
    missing = gw.cli("app", "protect", "nope", "--json")
    assert missing.returncode == 1 and "nope" in missing.stdout + missing.stderr
    assert gw.api("PUT", "/api/instances/who/protection", json={}).status_code == 422
    after = gw.api("GET", "/api/operations", params={"kind": "protect"}).json()["items"]
    assert after == before  # refused before anything is journaled
    off = gw.cli("app", "protect", "who", "--off", "--json")
    assert off.returncode == 0 and json.loads(off.stdout)["protected"] is False
    browser = Browser(lab, root)

    def open_() -> httpx.Response:
        return browser.request("GET", app_url(lab), headers={"Remote-User": "mallory"})

    answer = open_()
    assert answer.status_code == 200, answer.text
    # identity headers are deleted on unprotected apps too
    assert "mallory" not in answer.text and "user= groups=" in answer.text
    listed = json.loads(gw.cli("domain", "list", "who", "--json").stdout)
    assert listed[0]["protected"] is False
