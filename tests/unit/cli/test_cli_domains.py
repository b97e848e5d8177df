"""`stackhub domain recheck` and `stackhub app protect` against the in-process API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from stackhub.cli import domains as cli_domains
from stackhub.cli.client import Client
from stackhub.cli.main import cli
from stackhub.proxy.models import DomainState
from stackhub.proxy.service import GatewaySettings
from stackhub.services import Services

from ..support import AsgiTransport, app_request

runner = CliRunner()


@pytest.fixture
def domains_api(api: TestClient, services: Services,
                monkeypatch: pytest.MonkeyPatch) -> TestClient:
    token = services.paths.admin_token.read_text().strip()

    def make_client(*args: Any, **kwargs: Any) -> Client:
        return Client(url="http://testserver", token=token, transport=AsgiTransport(api))

    monkeypatch.setattr(cli_domains, "Client", make_client)
    return api


def test_recheck_flags_a_dangling_domain(domains_api: TestClient, services: Services) -> None:
    clean = runner.invoke(cli, ["domain", "recheck", "--json"])
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.output)["dangling"] == []
    services.proxy.records.put("gone.example.org", "ghost", DomainState.ACTIVE.value)
    flagged = runner.invoke(cli, ["domain", "recheck"])
    assert flagged.exit_code == 1
    assert "gone.example.org no longer reaches this box" in flagged.output
    assert domains_api.get("/api/domains/recheck").json()["dangling"] == ["gone.example.org"]


def test_protect_an_unknown_app_is_refused(domains_api: TestClient) -> None:
    result = runner.invoke(cli, ["app", "protect", "nope", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["error"]["code"] == "not_found"
    bad = domains_api.put("/api/instances/nope/protection", json={"protected": "maybe"})
    assert bad.status_code == 422


def test_list_shows_the_dns_status_and_the_record_to_create(domains_api: TestClient,
                                                            services: Services) -> None:
    async def install() -> None:
        await services.apps.install(app_request(name="web", values={"WEB_PORT": "18361"}))
        await asyncio.wait_for(services.runner.tasks["web"], 30)

    asyncio.run(install())
    services.proxy.settings = GatewaySettings(addresses=("203.0.113.7",))
    services.proxy.records.set_setting("base", "box.example.com")
    services.proxy.records.set_setting("tls", "acme")
    services.proxy.records.put("shop.example.org", "web", DomainState.DANGLING.value)
    services.proxy.records.update("shop.example.org", state=DomainState.DANGLING.value,
                                  error="DNS no longer reaches this box: shop.example.org has "
                                  "no DNS record")
    shown = runner.invoke(cli, ["domain", "list"])
    assert shown.exit_code == 0, shown.output
    assert "missing" in shown.output and "DNS" in shown.output
    assert "shop.example.org: create shop.example.org. CNAME web.box.example.com." \
        in shown.output
    listed = {d["name"]: d for d in json.loads(
        runner.invoke(cli, ["domain", "list", "--json"]).output)}
    assert listed["shop.example.org"]["dns_status"] == "missing"
    assert listed["shop.example.org"]["record"] == {
        "type": "CNAME", "name": "shop.example.org", "value": "web.box.example.com"}
