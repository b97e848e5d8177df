"""Forward auth decisions (proxy/forward.py) on the in-process services: what the gateway is
told for each request to a protected app, and what ends a gateway session."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.requests import Request
from starlette.responses import Response

from stackhub.auth.models import Role
from stackhub.proxy.forward import GatewayAuth
from stackhub.proxy.service import GatewaySettings, ProxyService
from stackhub.proxy.views import _html
from stackhub.services import Services
from tests.unit.proxy.test_service import FakeGateway, FakeResolver, install

HOST = "web.home.lan"


@pytest.fixture
async def gate(live: Services) -> AsyncIterator[GatewayAuth]:
    proxy: ProxyService = live.proxy
    proxy.gateway = FakeGateway(live.paths.root / "gateway")
    proxy.settings = GatewaySettings(http_port=8080, https_port=8443)
    proxy._resolver = FakeResolver()
    live.paths.server_info.write_text(json.dumps({"url": "http://127.0.0.1:8420"}))
    await proxy.start()
    await install(live, "web", 18391)
    await install(live, "other", 18392)
    await proxy.set_base("home.lan", "auto")
    await proxy.protect("web", True)
    await proxy.protect("other", True)
    yield GatewayAuth(proxy, live.auth)
    await proxy.stop()


def user(live: Services, name: str, role: Role = Role.ADMIN) -> tuple[str, str]:
    """Make a user with a console session; return (session cookie, session id)."""
    live.auth.users.create(name, role, "x")
    cookie, session = live.auth.sessions.create(name, pending=False, ip="", user_agent="")
    return cookie, session.id


def signed_in(live: Services, gate: GatewayAuth, cookie: str, host: str = HOST) -> str:
    """Go through the hand-off; return the gateway cookie for `host`."""
    principal = live.auth.session_principal(cookie)
    assert principal is not None
    url = gate.ticket(principal, f"https://{host}:8443/page?x=1")
    assert url is not None and url.startswith(f"https://{host}:8443/.stackhub/auth?ticket=")
    redeemed = gate.check(token=gate.proxy.ask_token, host=f"{host}:8443",
                          uri=url.split(":8443", 1)[1], method="GET", cookie=None)
    assert redeemed.status == 302 and redeemed.headers["Location"] == "/page?x=1"
    assert redeemed.cookie is not None
    return redeemed.cookie[0]


def ask(gate: GatewayAuth, cookie: str | None, host: str = HOST, method: str = "GET") -> int:
    return gate.check(token=gate.proxy.ask_token, host=f"{host}:8443", uri="/", method=method,
                      cookie=cookie).status


async def test_a_gateway_cookie_opens_only_its_own_host(live: Services,
                                                        gate: GatewayAuth) -> None:
    console, _ = user(live, "ann")
    cookie = signed_in(live, gate, console)
    assert ask(gate, cookie) == 200
    answer = gate.check(token=gate.proxy.ask_token, host=HOST, uri="/", method="GET",
                        cookie=cookie)
    assert answer.headers == {"Remote-User": "ann", "Remote-Groups": "admin"}
    assert ask(gate, cookie, host="other.home.lan") == 302  # another app: sign in there
    assert ask(gate, None) == 302 and ask(gate, None, method="POST") == 401
    assert ask(gate, "shs_" + cookie[4:]) == 302  # a console-looking value is no gateway cookie
    wrong = gate.check(token="nope", host=HOST, uri="/", method="GET", cookie=cookie)
    assert wrong.status == 403


async def test_the_sign_in_redirect_comes_back_to_the_page(live: Services,
                                                           gate: GatewayAuth) -> None:
    answer = gate.check(token=gate.proxy.ask_token, host=f"{HOST}:8443", uri="/a?b=c",
                        method="GET", cookie=None)
    location = urlsplit(answer.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == (
        "https", "console.home.lan:8443", "/api/auth/gateway")
    assert parse_qs(location.query)["rd"] == [f"https://{HOST}:8443/a?b=c"]


@pytest.mark.parametrize(("asked", "back"), [
    ("/a/b?c=d", "/a/b?c=d"), ("//evil.example/x", "/"), ("/\\evil.example/x", "/"),
    ("/\\/evil.example", "/"), ("/%5Cevil.example", "/%5Cevil.example")])
async def test_the_page_after_sign_in_never_leaves_the_box(live: Services, gate: GatewayAuth,
                                                           asked: str, back: str) -> None:
    """A browser reads `\\` as `/`: `/\\evil.example` would be `//evil.example`, another site."""
    console, _ = user(live, "ann")
    principal = live.auth.session_principal(console)
    assert principal is not None
    url = gate.ticket(principal, f"https://{HOST}:8443{asked}")
    assert url is not None
    redeemed = gate.check(token=gate.proxy.ask_token, host=f"{HOST}:8443",
                          uri=url.split(":8443", 1)[1], method="GET", cookie=None)
    assert redeemed.status == 302 and redeemed.headers["Location"] == back


async def test_sign_out_disabling_and_revoking_the_grant_end_access(live: Services,
                                                                    gate: GatewayAuth) -> None:
    console, session_id = user(live, "ann")
    cookie = signed_in(live, gate, console)
    live.auth.sessions.revoke(session_id)  # signed out of the console
    assert ask(gate, cookie) == 302
    console, _ = user(live, "bob", Role.MEMBER)
    principal = live.auth.session_principal(console)
    assert principal is not None
    assert gate.ticket(principal, f"https://{HOST}:8443/") is None  # no grant
    live.auth.accounts.set_grants("bob", ["web"], actor=principal, ip="")
    cookie = signed_in(live, gate, console)
    assert ask(gate, cookie) == 200
    live.auth.accounts.set_grants("bob", [], actor=principal, ip="")
    refused = gate.check(token=gate.proxy.ask_token, host=f"{HOST}:8443", uri="/",
                         method="GET", cookie=cookie)
    assert refused.status == 403 and refused.text == "bob may not open web: ask an admin to " \
        "grant it" and refused.text_zh == "bob 无权打开 web：请让管理员授予权限。"
    live.auth.accounts.set_grants("bob", ["web"], actor=principal, ip="")
    live.auth.users.update("bob", disabled=True)
    assert ask(gate, cookie) == 302


async def test_taking_protection_away_stops_the_questions(live: Services,
                                                          gate: GatewayAuth) -> None:
    await gate.proxy.protect("web", False)
    assert ask(gate, None) == 403  # the loaded config no longer asks for this name
    assert HOST not in gate.proxy.protected_hosts()


def test_the_refusal_pages_speak_the_browser_s_first_language() -> None:
    def shown(language: str) -> Response:
        asked = Request({"type": "http", "headers": [(b"accept-language", language.encode())]})
        return _html(asked, 401, ("Sign-in required", "sign in to StackHub first"),
                     ("需要登录", "请先登录 StackHub。"))

    zh, en = shown("zh-CN,zh;q=0.9,en;q=0.8"), shown("en-US,en;q=0.9,zh;q=0.8")
    assert zh.status_code == en.status_code == 401
    assert "请先登录 StackHub。" in bytes(zh.body).decode() and '<html lang="zh-CN">' in \
        bytes(zh.body).decode()
    assert "sign in to StackHub first" in bytes(en.body).decode() and "请" not in \
        bytes(en.body).decode()
    assert zh.headers["vary"] == en.headers["vary"] == "Accept-Language"
    assert "sign in to StackHub" in bytes(shown("").body).decode()  # nothing asked: English
