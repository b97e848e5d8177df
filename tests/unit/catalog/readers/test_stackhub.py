"""StackHub's own format read from a folder: the two files, bounded, never through links."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stackhub.catalog.manifest import COMPOSE_FILE, MANIFEST_FILE
from stackhub.catalog.models import AppFormat
from stackhub.catalog.readers import stackhub
from stackhub.errors import Invalid, TooLarge

APP = Path(__file__).resolve().parents[3] / "fixtures" / "apps" / "web-app"


def test_read_app_dir(tmp_path: Path) -> None:
    app = stackhub.read_app_dir(APP, store="local")
    assert (app.format, app.store, app.ref) == (AppFormat.STACKHUB, "local", f"local/{app.id}")
    assert stackhub.read_app_dir(APP).store is None


def test_read_app_dir_refuses_links_missing_and_large_files(tmp_path: Path) -> None:
    folder = tmp_path / "app"
    shutil.copytree(APP, folder)
    (tmp_path / "linked").symlink_to(folder)
    with pytest.raises(Invalid, match="symbolic link"):
        stackhub.read_app_dir(tmp_path / "linked")
    (folder / COMPOSE_FILE).rename(tmp_path / "compose.yaml")
    (folder / COMPOSE_FILE).symlink_to(tmp_path / "compose.yaml")
    with pytest.raises(Invalid, match=f"{COMPOSE_FILE} is a symbolic link"):
        stackhub.read_app_dir(folder)
    (folder / COMPOSE_FILE).unlink()
    with pytest.raises(Invalid, match=f"{COMPOSE_FILE} is missing"):
        stackhub.read_app_dir(folder)
    (folder / COMPOSE_FILE).write_text("services: {web: {image: x}}\n" + "#" * 600_000)
    with pytest.raises(TooLarge):
        stackhub.read_app_dir(folder)
    (folder / MANIFEST_FILE).unlink()
    with pytest.raises(Invalid, match=f"{MANIFEST_FILE} is missing"):
        stackhub.read_app_dir(folder)
