"""A directory store's unchanged re-sync reads file metadata only; any edit is still seen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stackhub.catalog import sync
from tests.unit.catalog.storekit import no_official_store, open_catalog, write_store

__all__ = ["no_official_store"]


def test_unchanged_resync_skips_the_content_hash(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_store(tmp_path / "src", ["alpha", "beta"])
    catalog = open_catalog(tmp_path)
    catalog.add("mine", str(source), local=True)
    first = catalog.sync_store("mine")
    assert first.changed
    marker = tmp_path / "stores" / ".stat-mine"
    assert marker.read_text().startswith(f"{first.revision} stat:")

    def no_hash(root: Path) -> str:
        raise AssertionError(f"{root} was hashed again")

    monkeypatch.setattr(sync, "content_hash", no_hash)
    again = catalog.sync_store("mine")
    assert not again.changed and again.revision == first.revision


def test_an_edit_of_the_same_size_and_mtime_is_still_seen(tmp_path: Path) -> None:
    source = write_store(tmp_path / "src", ["alpha"])
    catalog = open_catalog(tmp_path)
    catalog.add("mine", str(source), local=True)
    first = catalog.sync_store("mine")
    compose = source / "apps" / "alpha" / "compose.yaml"
    text, info = compose.read_text(), compose.stat()
    assert "web:1" in text
    compose.write_text(text.replace("web:1", "web:2"))  # same size
    os.utime(compose, ns=(info.st_atime_ns, info.st_mtime_ns))  # mtime put back; ctime moved
    changed = catalog.sync_store("mine")
    assert changed.changed and changed.revision != first.revision
    assert "web:2" in str(catalog.get("mine/alpha").compose)


def test_a_lost_or_stale_marker_only_costs_a_content_hash(tmp_path: Path) -> None:
    source = write_store(tmp_path / "src", ["alpha"])
    catalog = open_catalog(tmp_path)
    catalog.add("mine", str(source), local=True)
    first = catalog.sync_store("mine")
    marker = tmp_path / "stores" / ".stat-mine"
    marker.write_text("sha256:other stat:other")
    assert not catalog.sync_store("mine").changed
    assert marker.read_text().startswith(f"{first.revision} stat:")  # remembered again
    marker.unlink()
    assert not catalog.sync_store("mine").changed
