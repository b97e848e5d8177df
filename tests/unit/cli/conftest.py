"""Fixtures of the CLI tests: the CLI's client pointed at an in-process API on the fakes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stackhub.api.app import create_app
from stackhub.cli import apps as cli_apps
from stackhub.cli import ops as cli_ops
from stackhub.cli.client import Client
from stackhub.services import Services

from ..support import AsgiTransport


@pytest.fixture
def api(services: Services, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """Point the CLI's Client at an in-process API on the fakes (operation streams included)."""
    monkeypatch.chdir(tmp_path)
    token = services.paths.admin_token.read_text().strip()
    app = create_app(services.paths, services=services, public_host="host.test")
    with TestClient(app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {token}"

        def make_client(*args: Any, **kwargs: Any) -> Client:
            return Client(url="http://testserver", token=token,
                          transport=AsgiTransport(test_client))

        monkeypatch.setattr(cli_apps, "Client", make_client)
        monkeypatch.setattr(cli_ops, "Client", make_client)
        yield test_client
