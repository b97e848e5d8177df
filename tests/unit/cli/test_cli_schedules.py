"""`stackhub backup schedule --default`, `schedules`, `unschedule --default` and `backup repo
default` against the in-process API (the fakes' services)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from stackhub.backup.models import RepositoryCreate
from stackhub.cli import apps as cli_apps
from stackhub.cli import backup as cli_backup
from stackhub.cli.main import cli
from stackhub.services import Services

from ..support import create_instance, instance_record

runner = CliRunner()


@pytest.fixture
def cli_api(api: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setattr(cli_backup, "Client", cli_apps.Client)  # the fixture's in-process one
    create_instance(services.records, instance_record("blog"))
    create_instance(services.records, instance_record("wiki"))
    return api


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli, ["backup", *args])
    return result.exit_code, result.output


def test_default_schedule_from_the_cli(cli_api: TestClient) -> None:
    code, out = invoke("schedule", "--default", "--every", "daily", "--at", "02:30",
                       "--keep-daily", "5", "--keep-weekly", "0", "--keep-monthly", "0")
    assert code == 0, out
    assert "default: daily at 02:30, keep 5 daily" in out and "blog, wiki" in out
    code, out = invoke("schedule", "wiki", "--off")  # wiki opts out
    assert code == 0, out
    code, out = invoke("schedules", "--json")
    listing = json.loads(out)
    assert listing["default"]["at"] == "02:30" and listing["default"]["instances"] == ["blog"]
    assert [(s["instance"], s["source"], s["enabled"]) for s in listing["instances"]] == [
        ("blog", "default", True), ("wiki", "instance", False)]
    code, out = invoke("schedule")  # no NAME: the same listing, for people
    assert code == 0 and "default: daily at 02:30" in out and "blog (default):" in out
    assert "wiki: daily at 03:00" in out and "paused" in out

    code, out = invoke("schedule", "blog", "--default")
    assert code != 0 and "not both" in out
    code, out = invoke("schedule", "--every", "weekly")  # NAME forgotten: refused, not listed
    assert code != 0 and "give NAME or --default" in out
    code, out = invoke("schedule", "--default", "--keep-daily", "0", "--keep-weekly", "0",
                       "--keep-monthly", "0", "--json")
    assert code != 0 and "keeps nothing" in out
    assert json.loads(invoke("schedules", "--json")[1])["default"]["keep_daily"] == 5

    code, out = invoke("unschedule", "--default", "--json")
    assert code == 0 and json.loads(out) == {"default": True, "scheduled": False}
    code, out = invoke("unschedule", "--default")
    assert code != 0 and "no default backup schedule" in out
    listing = json.loads(invoke("schedules", "--json")[1])
    assert listing["default"] is None and [s["instance"] for s in listing["instances"]] == [
        "wiki"]


def test_default_repository_from_the_cli(cli_api: TestClient, services: Services,
                                         tmp_path: Path) -> None:
    services.backups.repos.add(RepositoryCreate(name="disk2", url=str(tmp_path / "disk2")))
    code, out = invoke("repo", "default", "disk2", "--json")
    assert code == 0, out
    assert json.loads(out)["name"] == "disk2" and json.loads(out)["default"] is True
    assert services.backups.repos.get(None).name == "disk2"
    code, out = invoke("repo", "default", "ghost")
    assert code != 0 and "ghost" in out
    assert services.backups.repos.get(None).name == "disk2"
    code, out = invoke("repo", "remove", "disk2", "--yes")
    assert code != 0 and "make another repository the default first" in out
    code, out = invoke("repo", "default", "local")
    assert code == 0 and "local is the default backup repository" in out


def test_system_schedule_from_the_cli(cli_api: TestClient) -> None:
    code, out = invoke("schedule", "--system", "--every", "daily", "--at", "02:30",
                       "--keep-daily", "7", "--json")
    assert code == 0, out
    read = json.loads(out)
    assert (read["at"], read["keep_daily"], read["status"]["instance"]) == ("02:30", 7, "@system")
    code, out = invoke("schedules")
    assert code == 0 and "StackHub itself: daily at 02:30, keep 7 daily" in out
    assert json.loads(invoke("schedules", "--json")[1])["system"]["at"] == "02:30"
    code, out = invoke("schedule", "blog", "--system")
    assert code != 0 and "not both" in out
    code, out = invoke("unschedule", "--system", "--json")
    assert code == 0 and json.loads(out) == {"system": True, "scheduled": False}
    code, out = invoke("unschedule", "--system")
    assert code != 0 and "no schedule" in out
    assert json.loads(invoke("schedules", "--json")[1])["system"] is None
