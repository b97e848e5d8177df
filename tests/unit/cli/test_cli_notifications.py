"""`stackhub notifications` against the in-process API on the fakes: list, read, channels,
bad input refused with a clear message and nothing stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from stackhub.cli import notifications as cli_notifications
from stackhub.cli.client import Client
from stackhub.cli.main import command_tree
from stackhub.notify.models import Kind
from stackhub.notify.store import Notice
from stackhub.services import Services

from ..support import AsgiTransport

runner = CliRunner()


@pytest.fixture
def cli(api: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    token = services.paths.admin_token.read_text().strip()

    def make_client(*args: object, **kwargs: object) -> Client:
        return Client(url="http://testserver", token=token, transport=AsgiTransport(api))

    monkeypatch.setattr(cli_notifications, "Client", make_client)
    return api


def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(command_tree("notifications"), ["notifications", *args],
                           input=stdin)
    return result.exit_code, result.stdout


def test_list_read_and_read_all(cli: TestClient, services: Services) -> None:
    code, out = run()
    assert (code, out.strip()) == (0, "No notifications.")
    first = services.notify.notify(Notice(Kind.BACKUP_FAILED, "backup_failed:blog",
                                          {"instance": "blog", "error": "disk full"},
                                          "/backups", instance="blog"))
    services.notify.notify(Notice(Kind.DISK_FULL, "disk", {"path": "/srv", "percent": 93},
                                  "/containers"))
    assert first is not None
    code, out = run()
    assert code == 0 and "The backup of blog failed: disk full" in out and "2 unread" in out
    code, out = run("--json")
    listed = json.loads(out)
    assert listed["unread"] == 2 and [n["kind"] for n in listed["items"]] == [
        "disk_full", "backup_failed"]
    assert run("read", str(first.id))[0] == 0
    assert json.loads(run("--unread", "--json")[1])["unread"] == 1
    code, out = run("read", "--all", "--json")
    assert code == 0 and json.loads(out) == {"marked": 1}
    code, out = run("read", "999", "--json")
    assert code == 1 and json.loads(out)["error"]["code"] == "not_found"
    assert run("read")[0] != 0  # neither an id nor --all


def test_channels_and_bad_input(cli: TestClient, tmp_path: Path) -> None:
    code, out = run("webhook", "ftp://example.com/hook", "--json")
    assert code == 1 and "http://" in json.loads(out)["error"]["message"]
    code, out = run("webhook", "https://hooks.example.com/in")
    assert code == 0 and "Signing secret (shown once)" in out
    password = tmp_path / "smtp.txt"
    password.write_text("pw-from-file\n")
    code, out = run("email", "--host", "smtp.example.com", "--from", "sh@example.com",
                    "--to", "a@example.com", "--to", "b@example.com", "--password-file",
                    str(password), "--username", "sh", "--json")
    assert code == 0, out
    read = json.loads(out)
    assert read["recipients"] == ["a@example.com", "b@example.com"] and read["password_set"]
    code, out = run("channels", "--json")
    assert code == 0 and "pw-from-file" not in out
    assert {c["kind"]: c["configured"] for c in json.loads(out)} == {"webhook": True,
                                                                     "email": True}
    code, out = run("email", "--host", "smtp.example.com", "--from", "sh@example.com",
                    "--to", "nobody", "--json")
    assert code == 1 and "is not an e-mail address" in json.loads(out)["error"]["message"]
    assert json.loads(run("channels", "--json")[1])[1]["recipients"] == [
        "a@example.com", "b@example.com"]
    assert run("test", "carrier-pigeon")[0] == 1
    assert run("remove", "email", "--yes")[0] == 0
    assert json.loads(run("channels", "--json")[1])[1]["configured"] is False
