"""Catalog index: full-text search in every language, filters, locale fallback, versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackhub.catalog.index import is_newer
from stackhub.catalog.service import Catalog
from stackhub.errors import Invalid, NotFound
from tests.unit.catalog.storekit import no_official_store, open_catalog, write_app

__all__ = ["no_official_store"]


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    first = tmp_path / "first"
    write_app(first, "photos", title={"en": "PhotoVault", "zh-CN": "照片保险库"},
              tagline={"en": "Your pictures, at home", "zh_CN": "家里的相册"},
              description={"en": "Back up every photo from your phone.",
                           "de": "Sichern Sie jedes Foto."},
              category=("Media", "Backup"))
    write_app(first, "notes", title={"en": "Jotter"}, tagline={"en": "Plain notes"},
              description={"en": "Notes that mention photos once."}, category=("Productivity",))
    write_app(first, "vault", title={"en": "Vaultwarden"}, tagline={"en": "Passwords"},
              category=("Security",))
    second = tmp_path / "second"
    write_app(second, "photos", title={"en": "PhotoVault (community)"}, category=("media",),
              version="2.0.0")
    catalog = open_catalog(tmp_path)
    catalog.add("first", str(first), local=True)
    catalog.add("second", str(second), local=True)
    catalog.sync()
    return catalog


def ids(apps: list[object]) -> list[str]:
    return [a.id for a in apps]  # type: ignore[attr-defined]


def test_same_app_in_two_stores_coexists(catalog: Catalog) -> None:
    assert ids(catalog.list()) == ["first/notes", "first/photos", "first/vault", "second/photos"]
    assert catalog.get("first/photos").version == "1.0.0"
    assert catalog.get("second/photos").version == "2.0.0"


def test_search_ranks_title_over_description(catalog: Catalog) -> None:
    found = ids(catalog.search("photo"))
    assert found[-1] == "first/notes", found
    assert set(found[:2]) == {"first/photos", "second/photos"}
    assert ids(catalog.search("vault passwords")) == ["first/vault"]
    assert ids(catalog.search("VAULTWARDEN")) == ["first/vault"]


def test_search_covers_every_language(catalog: Catalog) -> None:
    assert ids(catalog.search("保险库")) == ["first/photos"]
    assert ids(catalog.search("相册")) == ["first/photos"], "two CJK characters still match"
    assert ids(catalog.search("Sichern")) == ["first/photos"]
    assert catalog.search("nothing-like-this") == []


@pytest.mark.parametrize("text", ['"', "a\"b", "AND", "NOT OR", "*", "(x", "%", "_", "\\",
                                  "title:x", "NEAR(a b)", "x" * 500])
def test_odd_queries_never_error(catalog: Catalog, text: str) -> None:
    found = catalog.search(text)
    assert isinstance(found, list)
    assert all(a.id in ("first/photos", "second/photos") for a in found), ids(found)
    assert ids(catalog.search("photo")) != []  # the index still answers after the odd query


def test_filters(catalog: Catalog) -> None:
    assert ids(catalog.list(category="media")) == ["first/photos", "second/photos"]
    assert ids(catalog.list(category="MEDIA", store="second")) == ["second/photos"]
    assert ids(catalog.list(installable=False)) == []
    assert ids(catalog.list(query="photo", store="second")) == ["second/photos"]
    assert [(c.name, c.count) for c in catalog.categories()] == [
        ("media", 2), ("backup", 1), ("productivity", 1), ("security", 1)]


def test_locale_fallback(catalog: Catalog) -> None:
    zh = {a.id: a for a in catalog.list(locale="zh-CN")}
    assert zh["first/photos"].title == "照片保险库"
    assert zh["first/photos"].tagline == "家里的相册", "zh_CN key matches zh-CN"
    assert zh["first/notes"].title == "Jotter", "falls back to English"
    detail = catalog.details("first/photos", "de")
    assert detail.description == "Sichern Sie jedes Foto."
    assert detail.title == "PhotoVault"
    assert detail.locales == ["de", "en", "zh-CN", "zh_CN"]
    assert detail.icon_url and detail.icon_url.startswith("/api/catalog/apps/first/photos/icon")


def test_get_errors(catalog: Catalog) -> None:
    with pytest.raises(NotFound, match="no app"):
        catalog.get("first/missing")
    with pytest.raises(NotFound, match="no store"):
        catalog.get("nowhere/photos")
    for bad in ("first", "first/../x", "First/photos", "/photos"):
        with pytest.raises(Invalid):
            catalog.get(bad)


@pytest.mark.parametrize(("new", "rev", "old", "old_rev", "expected"), [
    ("1.1.0", 1, "1.0.0", 1, True),
    ("1.0.0", 1, "1.1.0", 1, False),
    ("1.10.0", 1, "1.9.0", 1, True),
    ("1.0.0", 2, "1.0.0", 1, True),
    ("1.0.0", 1, "1.0.0", 1, False),
    ("1.0.0", None, "1.0.0", 1, False),
    ("v2", 1, "2", 1, False),
    ("latest", 3, "latest", 2, True),
    ("stable", 1, "edge", 1, True),
    ("stable", 1, "edge", 2, False),
    ("stable", None, "edge", None, True),
])
def test_is_newer(new: str, rev: int | None, old: str, old_rev: int | None,
                  expected: bool) -> None:
    assert is_newer(new, rev, old, old_rev) is expected


def test_definition_from_another_version_asks_for_a_sync(catalog: Catalog) -> None:
    from stackhub.errors import StoreError

    with catalog.db.transaction() as conn:
        conn.execute("UPDATE catalog_apps SET definition = '{\"id\": 1}' WHERE app = 'notes'")
    with pytest.raises(StoreError, match="sync store 'first' again"):
        catalog.get("first/notes")
    catalog.sync_store("first", force=True)
    assert catalog.get("first/notes").id == "notes"
