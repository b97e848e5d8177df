"""Commands that read one thing through `call_or_fail`: `backup repo key` and `app settings`
print it (or its JSON), and an API error is reported and exits non-zero."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from stackhub.cli import apps as cli_apps
from stackhub.cli import backup as cli_backup
from stackhub.cli import updates as cli_updates
from stackhub.cli.main import cli

runner = CliRunner()


@pytest.fixture
def cli_api(api: TestClient, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setattr(cli_backup, "Client", cli_apps.Client)  # the fixture's in-process one
    monkeypatch.setattr(cli_updates, "Client", cli_apps.Client)
    return api


def test_repo_key_prints_the_password_or_fails(cli_api: TestClient) -> None:
    result = runner.invoke(cli, ["backup", "repo", "key", "local", "--json"])
    assert result.exit_code == 0, result.output
    key = json.loads(result.stdout)
    assert key["password"] and key["warning"]
    missing = runner.invoke(cli, ["backup", "repo", "key", "ghost", "--json"])
    assert missing.exit_code == 1
    assert "ghost" in json.loads(missing.stdout)["error"]["message"]


def test_settings_of_a_missing_instance_fail(cli_api: TestClient) -> None:
    result = runner.invoke(cli, ["app", "settings", "ghost"])
    assert result.exit_code == 1
    assert "Error:" in result.output and "ghost" in result.output
