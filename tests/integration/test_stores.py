"""Stores end to end: a git store from a local repository, archive stores over local HTTP,
and an install from a synced store on the real engine."""

from __future__ import annotations

import json
import subprocess
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stackhub.api.app import create_app
from stackhub.config import Paths
from tests.integration.conftest import docker, http_text

pytestmark = pytest.mark.integration
IMAGE = "stackhub-test/web:1"


def write_app(root: Path, app_id: str, *, version: str = "1.0.0", title: str = "") -> None:
    """Write a StackHub-format app with a port parameter under root/apps."""
    folder = root / "apps" / app_id
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"format": "stackhub/v1", "id": app_id, "name": app_id.title(),
                "version": version, "title": {"en": title or f"{app_id.title()} app"},
                "tagline": {"en": f"{app_id} from a git store"}, "category": ["utilities"],
                "icon": "icon.png", "main": {"service": "web", "port": 80},
                "parameters": [{"name": "WEB_PORT", "type": "port", "default": 18300}]}
    (folder / "stackhub-app.yaml").write_text(json.dumps(manifest))
    (folder / "compose.yaml").write_text(
        f"services:\n  web:\n    image: {IMAGE}\n    ports: ['${{WEB_PORT}}:80']\n"
        "    stop_grace_period: 1s\n")
    (folder / "icon.png").write_bytes(b"\x89PNG\r\n\x1a\n" + app_id.encode())


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


def casaos_store(root: Path) -> Path:
    """Write a small CasaOS store wrapped in a top folder, as CasaOS publishes its zip."""
    app = root / "CasaOS-AppStore-main" / "Apps" / "Pagehost"
    app.mkdir(parents=True)
    (app / "docker-compose.yml").write_text(f"""
name: pagehost
services:
  pagehost:
    image: {IMAGE}
    ports: ["8080:80"]
    volumes: ["/DATA/AppData/$AppID/www:/data"]
    stop_grace_period: 1s
x-casaos:
  main: pagehost
  architectures: [amd64, arm64]
  category: Utilities
  icon: https://cdn.example.org/Apps/Pagehost/icon.png
  title: {{en_US: Pagehost, zh_CN: 网页主机}}
  tagline: {{en_US: Serves one page}}
  port_map: "8080"
  version: "1.2.0"
""")
    (app / "icon.png").write_bytes(b"\x89PNG\r\n\x1a\npagehost")
    return root


def pack(root: Path, dest: Path) -> Path:
    """Pack a folder as .tar.gz or .zip, by the name of dest."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if dest.name.endswith(".zip"):
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in files:
                zf.write(path, path.relative_to(root).as_posix())
    else:
        with tarfile.open(dest, "w:gz") as tar:
            for path in files:
                tar.add(path, path.relative_to(root).as_posix())
    return dest


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("STACKHUB_STORE_SYNC_INTERVAL", "0")
    monkeypatch.setenv("STACKHUB_OFFICIAL_STORE", str(tmp_path / "no-official-store"))
    paths = Paths(tmp_path / "data")
    with TestClient(create_app(paths)) as client:
        client.headers["Authorization"] = f"Bearer {paths.admin_token.read_text().strip()}"
        yield client


@pytest.fixture
def web_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A local HTTP server over a folder (a stand-in for a store's download site)."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_git_store_sync_and_upstream_change(api: TestClient, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write_app(repo, "hello")
    write_app(repo, "notes")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "two apps")
    url = f"file://{repo}"

    refused = api.post("/api/stores", json={"name": "gitstore", "source": url})
    assert refused.status_code == 422, "file:// needs a local store added by an admin"
    added = api.post("/api/stores", json={"name": "gitstore", "source": url, "local": True})
    assert added.status_code == 201, added.text
    store = added.json()
    assert store["kind"] == "git" and store["last_error"] is None, store
    assert store["revision"] == git(repo, "rev-parse", "HEAD") and store["app_count"] == 2
    listed = api.get("/api/catalog/apps", params={"store": "gitstore"}).json()
    assert [a["id"] for a in listed] == ["gitstore/hello", "gitstore/notes"]

    unchanged = api.post("/api/stores/gitstore/sync").json()
    assert unchanged["changed"] is False

    write_app(repo, "hello", version="1.1.0", title="Hello again")
    write_app(repo, "third")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change upstream")
    synced = api.post("/api/stores/gitstore/sync").json()
    assert synced["changed"] is True and synced["revision"] == git(repo, "rev-parse", "HEAD")
    assert synced["app_count"] == 3
    hello = api.get("/api/catalog/apps/gitstore/hello").json()
    assert hello["version"] == "1.1.0" and hello["title"] == "Hello again"
    assert [a["id"] for a in api.get("/api/catalog/apps", params={"q": "again"}).json()] == \
        ["gitstore/hello"]
    icon = api.get(hello["icon_url"])
    assert icon.status_code == 200 and icon.content.endswith(b"hello")

    # a branch of the same repository is a second store; both coexist as store/app
    git(repo, "checkout", "-qb", "next")
    write_app(repo, "hello", version="2.0.0-beta")
    git(repo, "commit", "-qam", "beta")
    beta = api.post("/api/stores", json={"name": "beta", "source": url, "branch": "next",
                                         "local": True}).json()
    assert beta["last_error"] is None
    assert api.get("/api/catalog/apps/beta/hello").json()["version"] == "2.0.0-beta"
    assert api.get("/api/catalog/apps/gitstore/hello").json()["version"] == "1.1.0"

    # upstream breakage: the store fails to sync, the previous catalog stays
    git(repo, "checkout", "-q", "main")
    git(repo, "rm", "-rq", "apps")
    git(repo, "commit", "-qm", "oops")
    failed = api.post("/api/stores/gitstore/sync")
    assert failed.status_code == 502
    assert len(api.get("/api/catalog/apps", params={"store": "gitstore"}).json()) == 3
    assert api.get("/api/stores").json()[0]["last_error"]


@pytest.mark.parametrize("archive", ["store.tar.gz", "store.zip"])
def test_archive_store_only_when_local(api: TestClient, tmp_path: Path,
                                       web_root: tuple[Path, str], archive: str) -> None:
    folder, base = web_root
    pack(casaos_store(tmp_path / "casaos"), folder / archive)
    url = f"{base}/{archive}"
    refused = api.post("/api/stores", json={"name": "casa", "source": url})
    assert refused.status_code == 422
    assert "local" in refused.json()["error"]["message"]
    added = api.post("/api/stores", json={"name": "casa", "source": url, "local": True}).json()
    assert added["kind"] == "archive" and added["last_error"] is None, added
    assert added["app_count"] == 1 and added["revision"].startswith("sha256:")
    app = api.get("/api/catalog/apps/casa/pagehost", params={"locale": "zh-CN"}).json()
    assert app["format"] == "casaos" and app["title"] == "网页主机" and app["installable"]
    icon = api.get(app["icon_url"])
    assert icon.status_code == 200 and icon.content.endswith(b"pagehost"), app["icon_url"]

    # the same bytes served again: unchanged; new content: re-indexed
    assert api.post("/api/stores/casa/sync").json()["changed"] is False
    compose = tmp_path / "casaos" / "CasaOS-AppStore-main" / "Apps" / "Pagehost" / \
        "docker-compose.yml"
    compose.write_text(compose.read_text().replace('"1.2.0"', '"1.3.0"'))
    pack(tmp_path / "casaos", folder / archive)
    assert api.post("/api/stores/casa/sync").json()["changed"] is True
    assert api.get("/api/catalog/apps/casa/pagehost").json()["version"] == "1.3.0"


def wait_operation(api: TestClient, op_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        op = api.get(f"/api/operations/{op_id}").json()
        if op["state"] != "running":
            return dict(op)
        time.sleep(0.2)
    raise AssertionError(f"operation {op_id} still running")


def install(api: TestClient, ref: str, name: str) -> dict[str, Any]:
    answer = api.post("/api/instances", json={"source": {"kind": "catalog", "ref": ref},
                                              "name": name})
    assert answer.status_code == 202, answer.text
    op = wait_operation(api, answer.json()["operation"]["id"])
    assert op["state"] == "succeeded", op
    return dict(api.get(f"/api/instances/{name}").json())


def test_install_from_stores_and_update_flag(api: TestClient, tmp_path: Path,
                                             web_root: tuple[Path, str]) -> None:
    source = tmp_path / "local-store"
    write_app(source, "hello")
    assert api.post("/api/stores", json={"name": "lab", "source": str(source),
                                         "local": True}).json()["app_count"] == 1
    folder, base = web_root
    pack(casaos_store(tmp_path / "casaos"), folder / "casa.zip")
    assert api.post("/api/stores", json={"name": "casa", "source": f"{base}/casa.zip",
                                         "local": True}).json()["app_count"] == 1
    names = ["t-store-hello", "t-store-casa"]
    try:
        hello = install(api, "lab/hello", names[0])
        assert hello["status"] == "running" and hello["store"] == "lab"
        assert http_text(hello["ports"][0]["host_port"]) == "hello\n"
        casa = install(api, "casa/pagehost", names[1])
        assert casa["format"] == "casaos" and casa["status"] == "running"
        assert http_text(casa["ports"][0]["host_port"]) == "hello\n"
        assert (tmp_path / "data" / "appdata" / names[1]).is_dir()

        write_app(source, "hello", version="1.2.0")
        synced = api.post("/api/stores/lab/sync").json()
        assert synced["updates"] == [names[0]]
        flagged = api.get(f"/api/instances/{names[0]}").json()
        assert (flagged["update_available"], flagged["latest_version"]) == (True, "1.2.0")
        assert api.get(f"/api/instances/{names[1]}").json()["update_available"] is False

        # removing a store leaves its instances running with their own definition
        assert api.delete("/api/stores/lab").status_code == 204
        assert api.get(f"/api/instances/{names[0]}").json()["status"] == "running"
    finally:
        for name in names:
            answer = api.delete(f"/api/instances/{name}", params={"purge": True})
            if answer.status_code == 202:
                wait_operation(api, answer.json()["operation"]["id"])
            docker("compose", "-p", f"stackhub-{name}", "down", "-v", "--timeout", "1",
                   check=False)


def test_remote_store_on_a_loopback_name_is_refused(api: TestClient) -> None:
    """A host name that resolves to loopback is refused like the address itself."""
    for source in ("https://localhost/store.zip", "https://localhost/store.git"):
        added = api.post("/api/stores", json={"name": "remote", "source": source})
        assert added.status_code == 422, source
        assert "internal address" in added.json()["error"]["message"]
    assert api.get("/api/stores").json() == []
