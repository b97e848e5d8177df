"""Catalog and store routes through the real app (lifespan, auth) and the CLI on top of them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from stackhub.adapters.fakes import FakeCompose, FakeEngine
from stackhub.api.app import create_app
from stackhub.catalog import schedule
from stackhub.cli import catalog as catalog_cli
from stackhub.cli import stores as stores_cli
from stackhub.cli.client import Client
from stackhub.cli.main import cli
from stackhub.config import Paths
from stackhub.services import build
from tests.unit.catalog.storekit import no_official_store, open_catalog, write_app, write_store

from ..support import AsgiTransport

__all__ = ["no_official_store"]


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("STACKHUB_STORE_SYNC_INTERVAL", "0")
    paths = Paths(tmp_path / "data")
    engine = FakeEngine()
    services = build(paths, engine=engine, compose=FakeCompose(engine))
    with TestClient(create_app(paths, services=services)) as client:
        token = paths.admin_token.read_text().strip()
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    write_app(source, "photos", title={"en": "PhotoVault", "zh-CN": "照片保险库"},
              category=("Media",), screenshots=2)
    write_app(source, "notes", title={"en": "Jotter"}, category=("Productivity",))
    return source


def test_routes_need_authentication(api: TestClient) -> None:
    bare = TestClient(api.app)
    for method, path in (("GET", "/api/stores"), ("POST", "/api/stores"),
                         ("DELETE", "/api/stores/x"), ("POST", "/api/stores/sync"),
                         ("POST", "/api/stores/x/sync"), ("GET", "/api/catalog/apps"),
                         ("GET", "/api/catalog/apps/a/b"), ("GET", "/api/catalog/apps/a/b/icon"),
                         ("GET", "/api/catalog/apps/a/b/screenshots/0"),
                         ("GET", "/api/catalog/categories")):
        assert bare.request(method, path).status_code == 401, (method, path)


def test_a_store_cap_is_set_in_mib_and_checked(api: TestClient, store_dir: Path) -> None:
    for bad in (0, 4097, "big"):
        refused = api.post("/api/stores", json={"name": "capped", "source": str(store_dir),
                                                "local": True, "max_size_mb": bad})
        assert refused.status_code == 422, bad
    assert api.get("/api/stores").json() == []
    added = api.post("/api/stores", json={"name": "capped", "source": str(store_dir),
                                          "local": True, "max_size_mb": 5})
    assert added.status_code == 201 and added.json()["max_size_mb"] == 5
    assert added.json()["app_count"] == 2


def test_store_lifecycle_and_catalog(api: TestClient, store_dir: Path) -> None:
    added = api.post("/api/stores", json={"name": "mine", "source": str(store_dir),
                                          "local": True})
    assert added.status_code == 201, added.text
    assert added.json()["app_count"] == 2 and added.json()["kind"] == "local"
    assert [s["name"] for s in api.get("/api/stores").json()] == ["mine"]

    apps = api.get("/api/catalog/apps", params={"locale": "zh-CN"}).json()
    assert [(a["id"], a["title"]) for a in apps] == [("mine/notes", "Jotter"),
                                                     ("mine/photos", "照片保险库")]
    summary = apps[1]
    assert {"id", "store", "app", "format", "title", "tagline", "version", "category",
            "installable", "problems", "icon_url"} <= set(summary)
    assert summary["category"] == ["media"] and summary["installable"] is True
    found = api.get("/api/catalog/apps", params={"q": "保险", "installable": True}).json()
    assert [a["id"] for a in found] == ["mine/photos"]
    assert api.get("/api/catalog/apps", params={"category": "media"}).json()[0]["app"] == "photos"
    assert api.get("/api/catalog/categories").json() == [{"name": "media", "count": 1},
                                                         {"name": "productivity", "count": 1}]

    detail = api.get("/api/catalog/apps/mine/photos", params={"locale": "zh-CN"}).json()
    assert detail["title"] == "照片保险库" and detail["title_i18n"]["en"] == "PhotoVault"
    assert detail["screenshot_urls"] == ["/api/catalog/apps/mine/photos/screenshots/0",
                                         "/api/catalog/apps/mine/photos/screenshots/1"]

    icon = api.get(summary["icon_url"])
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/png"
    assert icon.content.endswith(b"photos")
    assert "max-age" in icon.headers["cache-control"] and icon.headers["etag"]
    again = api.get(summary["icon_url"], headers={"If-None-Match": icon.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    shot = api.get(detail["screenshot_urls"][1])
    assert shot.status_code == 200 and shot.content.endswith(b"shot 2")
    assert api.get("/api/catalog/apps/mine/photos/screenshots/2").status_code == 404
    assert api.get("/api/catalog/apps/mine/notes/screenshots/0").status_code == 404

    write_app(store_dir, "notes", version="2.0.0")
    synced = api.post("/api/stores/mine/sync").json()
    assert synced["changed"] is True and synced["app_count"] == 2
    assert api.post("/api/stores/sync").json()[0]["changed"] is False
    assert api.get("/api/catalog/apps/mine/notes").json()["version"] == "2.0.0"

    assert api.delete("/api/stores/mine").status_code == 204
    assert api.get("/api/catalog/apps").json() == []
    assert api.get("/api/catalog/apps/mine/photos").status_code == 404


def test_bad_requests(api: TestClient, tmp_path: Path) -> None:
    refused = api.post("/api/stores", json={"name": "loop", "source":
                                            "http://127.0.0.1:9/store.zip"})
    assert refused.status_code == 422 and "local" in refused.json()["error"]["message"]
    internal = api.post("/api/stores", json={"name": "meta", "source":
                                             "https://169.254.169.254/latest.tar.gz"})
    assert internal.status_code == 422
    assert "internal address" in internal.json()["error"]["message"]
    assert api.post("/api/stores", json={"name": "x", "source": str(tmp_path)}).status_code == 422
    assert api.post("/api/stores", json={"name": "../x", "source": "https://a.example/x.git"}
                    ).status_code == 422
    assert api.get("/api/stores").json() == []
    for path in ("/api/catalog/apps/..%2f..%2fetc/passwd/icon", "/api/catalog/apps/a/b",
                 "/api/catalog/apps/UP/b", "/api/catalog/apps/a/b/screenshots/-1"):
        assert api.get(path).status_code in (404, 422), path
    assert api.post("/api/stores/nope/sync").status_code == 404
    assert api.delete("/api/stores/nope").status_code == 404


def test_failed_first_sync_is_reported(api: TestClient, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    added = api.post("/api/stores", json={"name": "empty", "source": str(empty), "local": True})
    assert added.status_code == 201
    assert "no app store found" in added.json()["last_error"]
    failed = api.post("/api/stores/empty/sync")
    assert failed.status_code == 502 and failed.json()["error"]["code"] == "store_error"


async def test_scheduler_syncs_due_stores(tmp_path: Path, store_dir: Path) -> None:
    import asyncio

    catalog = open_catalog(tmp_path)
    catalog.add("mine", str(store_dir), local=True)
    assert schedule.start(catalog, interval=0) is None
    task = schedule.start(catalog, interval=0.05)
    try:
        for _ in range(400):
            if catalog.store("mine").last_sync:
                break
            await asyncio.sleep(0.05)
        assert catalog.store("mine").app_count == 2
        write_app(store_dir, "extra")
        for _ in range(400):
            if catalog.store("mine").app_count == 3:
                break
            await asyncio.sleep(0.05)
        assert catalog.store("mine").app_count == 3
    finally:
        await schedule.stop(task)


def test_sync_interval_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKHUB_STORE_SYNC_INTERVAL", "30")
    assert schedule.sync_interval() == 30
    monkeypatch.setenv("STACKHUB_STORE_SYNC_INTERVAL", "soon")
    assert schedule.sync_interval() == 900
    monkeypatch.delenv("STACKHUB_STORE_SYNC_INTERVAL")
    assert schedule.sync_interval() == 900


@pytest.fixture
def runner(api: TestClient, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    def client() -> Client:
        return Client(url="http://testserver", token="x", transport=AsgiTransport(api))

    monkeypatch.setattr(stores_cli, "Client", client)
    monkeypatch.setattr(catalog_cli, "Client", client)
    monkeypatch.setenv("LANG", "C.UTF-8")
    return CliRunner()


def test_cli_store_and_catalog(runner: CliRunner, store_dir: Path) -> None:
    added = runner.invoke(cli, ["store", "add", "mine", str(store_dir), "--local"])
    assert added.exit_code == 0, added.output
    assert "Added store mine (local): 2 apps" in added.output
    listed = json.loads(runner.invoke(cli, ["store", "list", "--json"]).output)
    assert listed[0]["name"] == "mine" and listed[0]["app_count"] == 2
    assert "mine" in runner.invoke(cli, ["store", "list"]).output

    apps = json.loads(runner.invoke(cli, ["catalog", "list", "--json"]).output)
    assert [a["id"] for a in apps] == ["mine/notes", "mine/photos"]
    for key in ("id", "store", "app", "format", "title", "version", "category", "installable",
                "problems"):
        assert key in apps[0]
    table = runner.invoke(cli, ["catalog", "list", "--category", "media"]).output
    assert "mine/photos" in table and "mine/notes" not in table
    found = json.loads(runner.invoke(cli, ["catalog", "search", "jott", "--json"]).output)
    assert [a["id"] for a in found] == ["mine/notes"]
    shown = runner.invoke(cli, ["catalog", "show", "mine/photos", "--locale", "zh-CN"])
    assert shown.exit_code == 0 and "照片保险库" in shown.output and "Installable" in shown.output
    assert json.loads(runner.invoke(cli, ["catalog", "show", "mine/photos", "--json"]).output
                      )["title"] == "PhotoVault"
    bad = runner.invoke(cli, ["catalog", "show", "nope"])
    assert bad.exit_code == 2

    write_app(store_dir, "notes", version="3.0.0")
    synced = runner.invoke(cli, ["store", "sync", "mine"])
    assert synced.exit_code == 0 and "2 apps, updated" in synced.output
    assert "unchanged" in runner.invoke(cli, ["store", "sync"]).output
    removed = runner.invoke(cli, ["store", "remove", "mine"])
    assert removed.exit_code == 0
    missing = runner.invoke(cli, ["store", "remove", "mine", "--json"])
    assert missing.exit_code == 1 and json.loads(missing.output)["error"]["code"] == "not_found"


def test_cli_reports_failures(runner: CliRunner, tmp_path: Path) -> None:
    refused = runner.invoke(cli, ["store", "add", "loop", "http://127.0.0.1:9/s.zip"])
    assert refused.exit_code == 1 and "local" in refused.output
    empty = tmp_path / "empty"
    empty.mkdir()
    added = runner.invoke(cli, ["store", "add", "empty", str(empty), "--local"])
    assert added.exit_code == 1 and "first sync failed" in added.output
    synced = runner.invoke(cli, ["store", "sync", "--json"])
    assert synced.exit_code == 1 and json.loads(synced.output)[0]["error"]
    write_store(empty, ["solo"])
    assert runner.invoke(cli, ["store", "sync", "empty"]).exit_code == 0
