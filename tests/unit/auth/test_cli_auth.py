"""The auth CLI against an in-process API: login/logout, users, tokens, audit, local reset."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from stackhub.api.app import create_app
from stackhub.auth import totp
from stackhub.cli import auth as cli_auth
from stackhub.cli.client import Client, user_token_file
from stackhub.cli.main import cli
from stackhub.services import Services

from ..support import AsgiTransport

runner = CliRunner()
URL = "http://testserver"
PW = "alice-long-password"


@pytest.fixture
def api(services: Services, monkeypatch: pytest.MonkeyPatch) -> Iterator[FastAPI]:
    """Point the CLI at an in-process API on the fakes, with admin alice set up."""
    app = create_app(services.paths, services=services, public_host="host.test")
    with TestClient(app) as client:
        token = services.auth.setup_path.read_text().strip()
        answer = client.post("/api/auth/setup", json={"setup_token": token,
                                                      "username": "alice", "password": PW})
        assert answer.status_code == 201

        def make_client(url: str | None = None, token: str | None = None,
                        data_dir: Any = None) -> Client:
            made = Client(url=URL, token=token)
            headers = {"Authorization": f"Bearer {made.token}"} if made.token else {}
            return Client(url=URL, token=token,
                          transport=AsgiTransport(TestClient(app), headers))

        monkeypatch.setattr(cli_auth, "Client", make_client)
        monkeypatch.setattr(cli_auth, "session_client", lambda url: TestClient(app))
        yield app


def run(*args: str, stdin: str | None = None) -> Any:
    """Invoke the CLI."""
    return runner.invoke(cli, list(args), input=stdin)


def test_login_saves_a_private_token_and_logout_revokes_it(api: FastAPI,
                                                          services: Services) -> None:
    sessions = len(services.auth.sessions.of_user("alice"))  # the one setup opened
    result = run("login", "--url", URL, "-u", "alice", "--password-stdin", stdin=PW + "\n")
    assert result.exit_code == 0, result.output
    assert "as alice (admin)" in " ".join(result.stdout.split())
    path = user_token_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = path.read_text().strip()
    assert token.startswith("sht_")
    assert len(services.auth.sessions.of_user("alice")) == sessions  # login's was closed
    listed = run("token", "list", "--json")
    assert listed.exit_code == 0, listed.output
    items = json.loads(listed.stdout)
    assert [i["current"] for i in items] == [True] and items[0]["name"].startswith("cli@")
    out = run("logout")
    assert out.exit_code == 0 and not path.exists()
    assert services.auth.token_principal(token) is None


def test_login_failures_are_reported(api: FastAPI) -> None:
    result = run("login", "--url", URL, "-u", "alice", "--password-stdin",
                 stdin="wrong-password-123\n")
    assert result.exit_code == 1
    assert "invalid username or password" in result.stderr
    assert not user_token_file().exists()


def test_login_with_totp(api: FastAPI, services: Services) -> None:
    principal = services.auth.principal(services.auth.users.get("alice"), via="session")
    secret = services.auth.enrol_totp(principal).secret
    services.auth.confirm_totp(principal, totp.code_at(secret, time.time() - 30), ip="")
    code = totp.code_at(secret, time.time())
    result = run("login", "--url", URL, "-u", "alice", "--password-stdin",
                 stdin=f"{PW}\n{code}\n")
    assert result.exit_code == 0, result.output
    assert user_token_file().read_text().startswith("sht_")


def test_user_and_token_commands(api: FastAPI, services: Services) -> None:
    assert run("login", "--url", URL, "-u", "alice", "--password-stdin",
               stdin=PW + "\n").exit_code == 0
    added = run("user", "add", "bob", "--password-stdin", stdin="bob-long-password\n")
    assert added.exit_code == 0, added.output
    weak = run("user", "add", "carl", "--password-stdin", stdin="short\n")
    assert weak.exit_code == 1 and "at least" in weak.stderr
    users = json.loads(run("user", "list", "--json").stdout)
    assert [(u["name"], u["role"]) for u in users] == [("alice", "admin"), ("bob", "member")]
    assert run("user", "disable", "bob").exit_code == 0
    assert services.auth.users.get("bob").disabled
    assert run("user", "enable", "bob").exit_code == 0
    assert "nothing" in run("user", "grant", "bob").stdout
    created = run("token", "create", "backup-script", "--expires-days", "30", "--json")
    assert created.exit_code == 0, created.output
    token_id = json.loads(created.stdout)["id"]
    assert run("token", "revoke", token_id).exit_code == 0
    assert run("user", "remove", "bob", "--yes").exit_code == 0
    assert services.auth.users.find("bob") is None
    entries = json.loads(run("audit", "--json", "-n", "100").stdout)
    actions = {e["action"] for e in entries}
    assert {"login", "user.create", "user.update", "user.delete", "token.create",
            "token.revoke"} <= actions
    table = run("audit")
    assert table.exit_code == 0 and "user.create" in table.stdout


def test_builtin_admin_token_has_no_tokens_of_its_own(api: FastAPI) -> None:
    result = run("token", "list")
    assert result.exit_code == 1 and "built-in admin token" in " ".join(result.stderr.split())


def test_reset_password_is_local_and_ends_sessions(api: FastAPI, services: Services) -> None:
    client = TestClient(api)
    assert client.post("/api/auth/login", json={"username": "alice",
                                                "password": PW}).status_code == 200
    result = run("user", "reset-password", "alice", "--password-stdin",
                 stdin="a-fresh-long-password\n")
    assert result.exit_code == 0, result.output
    assert client.get("/api/auth/sessions").status_code == 401
    assert client.post("/api/auth/login", json={"username": "alice",
                                                "password": "a-fresh-long-password"}
                       ).status_code == 200
    missing = run("user", "reset-password", "nobody", "--password-stdin",
                  stdin="a-fresh-long-password\n")
    assert missing.exit_code == 1 and "no user named" in missing.stderr
