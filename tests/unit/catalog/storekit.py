"""Helpers for catalog tests: write StackHub-format stores and open a catalog on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stackhub.adapters.fetch import Fetcher
from stackhub.adapters.git import Git
from stackhub.catalog.service import Catalog
from stackhub.state.db import Database

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def write_app(root: Path, app_id: str, *, version: str = "1.0.0", revision: int = 1,
              title: dict[str, str] | None = None, tagline: dict[str, str] | None = None,
              description: dict[str, str] | None = None,
              category: tuple[str, ...] = ("utilities",), icon: bool = True,
              screenshots: int = 0, image: str = "stackhub-test/web:1") -> Path:
    """Write one StackHub-format app folder under root/apps."""
    folder = root / "apps" / app_id
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": "stackhub/v1", "id": app_id, "name": app_id.title(), "version": version,
        "revision": revision, "title": title or {"en": f"{app_id.title()} app"},
        "tagline": tagline or {"en": f"The {app_id} tagline"},
        "description": description or {"en": f"All about {app_id}."},
        "category": list(category), "main": {"service": "web", "port": 80},
        "screenshots": [f"screenshot-{n}.png" for n in range(1, screenshots + 1)],
    }
    if icon:
        manifest["icon"] = "icon.png"
        (folder / "icon.png").write_bytes(PNG + app_id.encode())
    for n in range(1, screenshots + 1):
        (folder / f"screenshot-{n}.png").write_bytes(PNG + f"shot {n}".encode())
    (folder / "stackhub-app.yaml").write_text(json.dumps(manifest, ensure_ascii=False))
    (folder / "compose.yaml").write_text(
        f"services:\n  web:\n    image: {image}\n    ports: ['${{WEB_PORT:-18080}}:80']\n")
    return folder


def write_store(root: Path, apps: list[str], **kwargs: object) -> Path:
    """Write a store with the named apps."""
    for app_id in apps:
        write_app(root, app_id, **kwargs)
    return root


def write_broken(root: Path, app_id: str, manifest: str = "format: [unclosed") -> Path:
    """Write an app folder that cannot be read."""
    folder = root / "apps" / app_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stackhub-app.yaml").write_text(manifest)
    (folder / "compose.yaml").write_text("services: {}\n")
    return folder


@pytest.fixture(autouse=True)
def no_official_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the repository's official store out of unit tests."""
    monkeypatch.setenv("STACKHUB_OFFICIAL_STORE", str(tmp_path / "no-official-store"))


def open_catalog(tmp_path: Path, *, git: Git | None = None,
                 fetcher: Fetcher | None = None) -> Catalog:
    """Open a catalog on a fresh database under tmp_path."""
    return Catalog(Database(tmp_path / "stackhub.db"), tmp_path / "stores", git=git,
                   fetcher=fetcher, arch="amd64", timeout=30)


def add_instance(catalog: Catalog, name: str, app_ref: str, version: str,
                 revision: int | None) -> None:
    """Record an installed instance of a catalog app."""
    store = app_ref.split("/")[0]
    with catalog.db.transaction() as conn:
        conn.execute("INSERT INTO instances (name, app_ref, store, format, version, revision, "
                     "status, definition, created_at, updated_at) VALUES "
                     "(?,?,?,'stackhub',?,?,'running','{}','t','t')",
                     (name, app_ref, store, version, revision))


def update_flag(catalog: Catalog, name: str) -> str | None:
    """Return an instance's update_available column."""
    rows = catalog.db.query("SELECT update_available FROM instances WHERE name = ?", (name,))
    return rows[0][0]
