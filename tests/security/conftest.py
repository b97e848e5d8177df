"""Fixtures for the attack suite: a full app (fake engine) behind Starlette's TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from stackhub.adapters.fakes import FakeCompose, FakeEngine
from stackhub.api.app import create_app
from stackhub.apps import ports as ports_module
from stackhub.config import Paths
from stackhub.services import Services, build

IMAGE = "stackhub-test/web:1"
ORIGIN = "http://testserver"
ADMIN = ("alice", "alice-has-a-long-password")
MEMBER = ("bob", "bob-has-a-long-password")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the real data root, token and host ports."""
    isolate(tmp_path, monkeypatch)


def isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the data root, store and config at ``tmp_path``; every host port looks free."""
    monkeypatch.setenv("STACKHUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STACKHUB_OFFICIAL_STORE", str(tmp_path / "no-official-store"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    for name in ("STACKHUB_URL", "STACKHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(ports_module, "host_port_free", lambda port, protocol="tcp": True)


@dataclass
class Server:
    """One running app with its data root, fakes and a default (anonymous) client."""

    paths: Paths
    services: Services
    engine: FakeEngine
    app: FastAPI
    client: TestClient

    @property
    def admin_token(self) -> str:
        """Return the built-in admin token (the local CLI's credential)."""
        return self.paths.admin_token.read_text().strip()

    @property
    def setup_token(self) -> str:
        """Return the one-time setup token from the data directory."""
        return (self.paths.secrets / "setup-token").read_text().strip()

    def new_client(self, **kwargs: Any) -> TestClient:
        """Return another client (its own cookies) on the same running app."""
        return TestClient(self.app, **kwargs)

    def admin_headers(self) -> dict[str, str]:
        """Return headers authenticating with the built-in admin token."""
        return {"Authorization": f"Bearer {self.admin_token}"}

    def create_user(self, name: str, password: str, role: str = "member") -> dict[str, Any]:
        """Create an account through the API with the admin token."""
        response = self.client.post("/api/users", headers=self.admin_headers(),
                                    json={"username": name, "password": password, "role": role})
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def signed_in(self, name: str, password: str, **kwargs: Any) -> TestClient:
        """Return a new client signed in by password (cookies set)."""
        client = self.new_client(**kwargs)
        response = client.post("/api/auth/login", json={"username": name, "password": password})
        assert response.status_code == 200, response.text
        return client

    def user_token(self, client: TestClient, name: str = "test") -> str:
        """Create an API token with a signed-in client and return its secret."""
        response = client.post("/api/tokens", json={"name": name}, headers=csrf(client))
        assert response.status_code == 201, response.text
        return str(response.json()["token"])


def csrf(client: TestClient, origin: str = ORIGIN) -> dict[str, str]:
    """Return the headers a same-origin console sends on unsafe requests."""
    return {"X-CSRF-Token": client.cookies.get("stackhub_csrf") or "", "Origin": origin}


def bearer(token: str) -> dict[str, str]:
    """Return an Authorization header."""
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def running(root: Path) -> Iterator[Server]:
    """Start an app on a fresh data root ``root``, with no admin yet (setup pending)."""
    paths = Paths(root)
    engine = FakeEngine()
    engine.allow_pull(IMAGE, 50.0)
    services = build(paths, engine=engine, compose=FakeCompose(engine), public_host="host.test")
    app = create_app(paths, services=services)
    with TestClient(app) as client:
        yield Server(paths=paths, services=services, engine=engine, app=app, client=client)
    services.db.close()


def set_up(server: Server) -> Server:
    """Finish the setup: admin alice and member bob exist."""
    response = server.new_client().post("/api/auth/setup", json={
        "setup_token": server.setup_token, "username": ADMIN[0], "password": ADMIN[1]})
    assert response.status_code == 201, response.text
    server.create_user(*MEMBER)
    return server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A started app on a fresh data root, with no admin yet (setup pending)."""
    with running(tmp_path / "data") as started:
        yield started


@pytest.fixture
def ready(server: Server) -> Server:
    """The app after setup: admin alice and member bob exist."""
    return set_up(server)
