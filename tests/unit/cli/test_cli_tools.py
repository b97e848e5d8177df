"""`stackhub files` and `stackhub engine` against the in-process API on the fakes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from stackhub.adapters.fakes import FakeEngine
from stackhub.cli import engine as cli_engine
from stackhub.cli import files as cli_files
from stackhub.cli.main import command_tree
from stackhub.services import Services

from ..support import IMAGE, AsgiTransport

runner = CliRunner()
NAME = "clifiles"


@pytest.fixture
def cli(api: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    """Point the files and engine commands at the in-process API; one instance installed."""
    from stackhub.cli.client import Client

    token = services.paths.admin_token.read_text().strip()

    def make_client(*args: object, **kwargs: object) -> Client:
        return Client(url="http://testserver", token=token, transport=AsgiTransport(api))

    monkeypatch.setattr(cli_files, "Client", make_client)
    monkeypatch.setattr(cli_engine, "Client", make_client)
    accepted = api.post("/api/instances", json={
        "source": {"kind": "compose", "compose": f"services:\n  web:\n    image: {IMAGE}\n"},
        "name": NAME})
    assert accepted.status_code == 202, accepted.text
    op_id = accepted.json()["operation"]["id"]
    deadline = time.monotonic() + 10
    while api.get(f"/api/operations/{op_id}").json()["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return api


def test_files_put_ls_get(cli: TestClient, tmp_path: Path) -> None:
    source = tmp_path / "app.ini"
    source.write_text("a=1\n")
    tree = command_tree("files")
    result = runner.invoke(tree, ["files", "put", str(source), f"{NAME}:"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(tree, ["files", "ls", NAME, "--json"])
    assert result.exit_code == 0, result.output
    assert [e["name"] for e in json.loads(result.output)["entries"]] == ["app.ini"]
    again = runner.invoke(tree, ["files", "put", str(source), f"{NAME}:app.ini"])
    assert again.exit_code != 0 and "already exists" in again.output
    dest = tmp_path / "back"
    dest.mkdir()
    result = runner.invoke(tree, ["files", "get", f"{NAME}:app.ini", str(dest)])
    assert result.exit_code == 0, result.output
    assert (dest / "app.ini").read_text() == "a=1\n"
    result = runner.invoke(tree, ["files", "get", f"{NAME}:../etc/passwd", str(dest)])
    assert result.exit_code != 0 and "not a file name" in result.output
    assert not (dest / ".passwd.part").exists()


def test_engine_lists_refuses_and_prunes(cli: TestClient, engine: FakeEngine) -> None:
    engine.images.add("busybox:1")
    tree = command_tree("engine")
    result = runner.invoke(tree, ["engine", "images", "--json"])
    assert result.exit_code == 0, result.output
    images = {tuple(i["tags"]): i for i in json.loads(result.output)}
    assert images[(IMAGE,)]["instances"] == [NAME] and images[(IMAGE,)]["in_use"]
    refused = runner.invoke(tree, ["engine", "rm", "image", IMAGE])
    assert refused.exit_code != 0 and "in use" in refused.output
    preview = runner.invoke(tree, ["engine", "prune", "--all-images", "--dry-run", "--json"])
    assert preview.exit_code == 0, preview.output
    assert [i["name"] for i in json.loads(preview.output)["items"]] == ["busybox:1"]
    assert "busybox:1" in engine.images  # a preview removes nothing
    done = runner.invoke(tree, ["engine", "prune", "--all-images", "--yes", "--json"])
    assert done.exit_code == 0, done.output
    assert "busybox:1" not in engine.images and IMAGE in engine.images
