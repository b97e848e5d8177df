"""Forward auth decisions (proxy/forward.py) on the in-process services: what the gateway is
told for each request to a protected app, and what ends a gateway session."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import pytest

from stackhub.auth.models import Role
from stackhub.proxy.forward import GatewayAuth
from stackhub.proxy.service import GatewaySettings, ProxyService
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
    assert ask(gate, cookie) == 403
    live.auth.accounts.set_grants("bob", ["web"], actor=principal, ip="")
    live.auth.users.update("bob", disabled=True)
    assert ask(gate, cookie) == 302


async def test_taking_protection_away_stops_the_questions(live: Services,
                                                          gate: GatewayAuth) -> None:
    await gate.proxy.protect("web", False)
    assert ask(gate, None) == 403  # the loaded config no longer asks for this name
    assert HOST not in gate.proxy.protected_hosts()
