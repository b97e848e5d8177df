"""The console is served at / with an SPA fallback that never answers for /api."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from stackhub.api import errors, web


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console")


def make_app() -> FastAPI:
    app = FastAPI()
    errors.install(app)
    router = APIRouter(prefix="/api")

    @router.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    app.include_router(router)
    web.mount_console(app)
    return app


@pytest.fixture
def dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "dist"
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text("<!doctype html><div id=app></div>")
    (folder / "assets" / "index-abc123.js").write_text("console.log(1)")
    (folder / "favicon.svg").write_text("<svg/>")
    monkeypatch.setenv("STACKHUB_WEB_DIR", str(folder))
    return folder


async def test_index_assets_and_client_routes(dist: Path) -> None:
    client = client_of(make_app())
    index = await client.get("/")
    assert index.status_code == 200 and "id=app" in index.text
    assert index.headers["cache-control"] == "no-cache"
    asset = await client.get("/assets/index-abc123.js")
    assert asset.status_code == 200
    assert "immutable" in asset.headers["cache-control"]
    for route in ("/store", "/apps/blog/logs", "/settings/users"):
        page = await client.get(route)
        assert page.status_code == 200 and "id=app" in page.text, route
    assert (await client.get("/favicon.svg")).status_code == 200


async def test_missing_files_with_extensions_are_real_404s(dist: Path) -> None:
    client = client_of(make_app())
    assert (await client.get("/assets/index-old999.js")).status_code == 404
    (dist.parent / "secret.txt").write_text("top secret")
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt"):
        answer = await client.get(path)
        assert "top secret" not in answer.text, path


async def test_api_paths_are_never_shadowed(dist: Path) -> None:
    client = client_of(make_app())
    assert (await client.get("/api/ping")).json() == {"pong": "yes"}
    for method, path in (("GET", "/api/nope"), ("GET", "/api"), ("POST", "/api/nope"),
                         ("GET", "/api/instances/x/unknown")):
        answer = await client.request(method, path)
        assert answer.status_code in (404, 405), (method, path)
        assert "id=app" not in answer.text
    body = (await client.get("/api/nope")).json()
    assert body["error"]["code"] == "not_found"


async def test_a_missing_build_says_how_to_build(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKHUB_WEB_DIR", str(tmp_path / "absent"))
    monkeypatch.setattr(web, "console_dir", lambda: None)
    client = client_of(make_app())
    page = await client.get("/")
    assert page.status_code == 200 and "scripts/build-web" in page.text
    assert (await client.get("/api/ping")).status_code == 200
