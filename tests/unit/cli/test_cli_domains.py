"""`stackhub domain recheck` and `stackhub app protect` against the in-process API."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from stackhub.cli import domains as cli_domains
from stackhub.cli.client import Client
from stackhub.cli.main import cli
from stackhub.proxy.models import DomainState
from stackhub.services import Services

from ..support import AsgiTransport

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
