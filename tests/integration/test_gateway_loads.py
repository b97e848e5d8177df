"""Real Caddy 2.6.2: loads after the last on-demand (ACME) name goes away are answered.

Caddy 2.6.2 keeps one on-demand rate limiter for the whole process; a config without
``on_demand.rate_limit`` resets it in an order that panics in the ``/load`` handler once an
earlier config set one, so every such load was dropped unanswered ("Server disconnected
without sending a response") and the gateway kept serving the old config.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from stackhub.adapters import caddy
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration


def test_removing_the_last_acme_name_and_loading_again_is_answered(tmp_path: Path) -> None:
    """Add an on-demand name, take it away, change a route: both later loads are served."""
    https, http, api = free_port(), free_port(), free_port()
    lan, custom = "app.loads.lan", "shop.example.test"

    async def scenario() -> None:
        gateway = caddy.CaddyGateway(tmp_path / "gateway")

        async def reapply() -> None:
            return None

        def spec(page: str, *acme: str) -> caddy.GatewaySpec:
            route = caddy.Route(id="app-x", hosts=(lan, *acme), page=page)
            return caddy.GatewaySpec(
                admin=gateway.listen, http_port=http, https_port=https,
                storage=gateway.storage, routes=(route,), internal=(lan,), acme=acme,
                ca=caddy.Acme(ca=f"https://127.0.0.1:{free_port()}/dir"),
                ask=f"http://127.0.0.1:{api}/ask" if acme else None)

        async def shown() -> str:
            async with httpx.AsyncClient(verify=False, timeout=10) as client:
                for _ in range(50):  # the internal certificate is being issued
                    try:
                        answer = await client.get(f"https://127.0.0.1:{https}/",
                                                  headers={"Host": lan},
                                                  extensions={"sni_hostname": lan})
                        return answer.text
                    except httpx.HTTPError:
                        await asyncio.sleep(0.1)
            raise AssertionError("the gateway did not answer")

        await gateway.start(reapply)
        try:
            await gateway.load(caddy.render(spec("first", custom)))
            assert "first" in await shown()
            await gateway.load(caddy.render(spec("second")))  # the custom domain removed
            assert "second" in await shown()
            await gateway.load(caddy.render(spec("third")))  # e.g. an app started
            assert "third" in await shown()
            assert gateway.process is not None
            panics = [e["msg"][:200] for e in gateway.process.lines
                      if "panic" in str(e.get("msg", ""))]
            assert panics == []
        finally:
            await gateway.stop()

    asyncio.run(scenario())
