"""Ready listing entries: same results and order as rows built per query, rebuilt on re-index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stackhub.catalog import index
from stackhub.catalog.listing import Listing
from stackhub.catalog.models import CatalogAppSummary
from stackhub.catalog.service import Catalog
from tests.unit.catalog.storekit import no_official_store, open_catalog, write_app

__all__ = ["no_official_store"]

QUERIES = ["", "photo", "photos", "vault", "pho", "notes", "相册", "照片保险库", "保险",
           "at", "a", "Sichern", "VAULT passwords", "nothing-like-this", "once photo"]


def _catalog(tmp_path: Path) -> Catalog:
    first = tmp_path / "first"
    write_app(first, "photos", title={"en": "PhotoVault", "zh-CN": "照片保险库"},
              tagline={"en": "Your pictures, at home", "zh_CN": "家里的相册"},
              description={"en": "Back up every photo from your phone.",
                           "de": "Sichern Sie jedes Foto."}, category=("Media", "Backup"))
    write_app(first, "notes", title={"en": "Jotter"}, tagline={"en": "Plain notes"},
              description={"en": "Notes that mention photos once, photo photo."},
              category=("Productivity",))
    write_app(first, "vault", title={"en": "Vaultwarden"}, tagline={"en": "Passwords photo"},
              category=("Security",))
    for n in range(12):
        write_app(first, f"app{n:02d}", title={"en": f"Photo tool {n}"},
                  tagline={"en": "photo " * (n % 4)}, description={"en": "at home " * n},
                  category=("Media",))
    second = tmp_path / "second"
    write_app(second, "photos", title={"en": "PhotoVault (community)"}, category=("media",),
              version="2.0.0")
    catalog = open_catalog(tmp_path)
    catalog.add("first", str(first), local=True)
    catalog.add("second", str(second), local=True)
    catalog.sync()
    return catalog


def _built_per_query(catalog: Catalog, locale: str, **filters: Any) -> list[CatalogAppSummary]:
    rows = index.query_apps(catalog.db, **filters)
    return [index.summary(r, locale) for r in rows]


@pytest.mark.parametrize("locale", ["en", "zh-CN", "de"])
def test_entries_equal_rows_built_per_query(tmp_path: Path, locale: str) -> None:
    catalog = _catalog(tmp_path)
    for text in QUERIES:
        filters: dict[str, Any]
        for filters in ({}, {"store": "second"}, {"category": "media"}, {"limit": 3},
                        {"installable": True}, {"recent": True}):
            want = _built_per_query(catalog, locale, text=text, **filters)
            got = catalog.list(query=text, locale=locale, **filters)
            assert [a.model_dump() for a in got] == [a.model_dump() for a in want], (text, filters)
    assert len(catalog.search("photo", locale)) >= 15


def test_entries_follow_a_re_index(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    assert catalog.search("Jotter")[0].tagline == "Plain notes"
    write_app(tmp_path / "first", "notes", title={"en": "Jotter"}, version="1.1.0",
              tagline={"en": "Notes, renamed"}, category=("Productivity",))
    assert catalog.sync_store("first").changed
    found = catalog.search("Jotter")
    assert [(a.id, a.version, a.tagline) for a in found] == [
        ("first/notes", "1.1.0", "Notes, renamed")]
    catalog.remove("second")
    assert [a.id for a in catalog.search("PhotoVault")] == ["first/photos"]


def test_unknown_columns_are_refused(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    with pytest.raises(ValueError, match="columns must be"):
        index.query_apps(catalog.db, columns="a.definition")
    assert [a.id for a in catalog.list(store="second")] == ["second/photos"]


def test_keys_from_an_older_index_give_no_entries(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    listing = Listing(catalog.db)
    key = catalog.db.query("SELECT index_key FROM stores WHERE name = 'first'")[0][0]
    assert [a.id for a in listing.entries([("first", "vault", key)], "en") or []] == [
        "first/vault"]
    assert listing.entries([("first", "vault", "an older key")], "en") is None
    assert listing.entries([("first", "gone", key)], "en") is None
    assert [a.id for a in catalog.search("Vaultwarden")] == ["first/vault"]


def test_a_full_cache_starts_over_without_rebuilding_per_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = _catalog(tmp_path)
    monkeypatch.setattr("stackhub.catalog.listing.MAX_SETS", 1)
    listing = Listing(catalog.db)
    keys = index.query_apps(catalog.db, columns=index.KEY_COLUMNS)
    assert listing.entries([k for k in keys if k["store"] == "second"], "en")  # cache full
    built: list[str] = []
    original = listing._build

    def counting(store: str, locale: str) -> tuple[str, dict[str, CatalogAppSummary]]:
        built.append(store)
        return original(store, locale)

    monkeypatch.setattr(listing, "_build", counting)
    found = listing.entries(keys, "en")
    assert [a.id for a in found or []] == [a.id for a in catalog.list()]
    assert built == ["first", "second"]
