"""Store sync: atomic swap, change detection, broken apps, failures keeping the old catalog."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stackhub.adapters import fetch
from stackhub.adapters.git import FakeGit
from stackhub.catalog.models import StoreKind
from stackhub.errors import AlreadyExists, Invalid, NotFound, StoreError
from tests.unit.catalog.storekit import (
    add_instance,
    no_official_store,
    open_catalog,
    update_flag,
    write_app,
    write_broken,
    write_store,
)

__all__ = ["no_official_store"]


def snapshots(tmp_path: Path, store: str) -> list[str]:
    return sorted(p.name for p in (tmp_path / "stores" / store).iterdir())


def test_local_store_sync_indexes_apps_and_skips_unchanged(tmp_path: Path) -> None:
    source = write_store(tmp_path / "src", ["alpha", "beta"])
    catalog = open_catalog(tmp_path)
    catalog.add("mine", str(source), local=True)
    first = catalog.sync_store("mine")
    assert first.changed and first.app_count == 2 and first.revision
    assert [a.id for a in catalog.list()] == ["mine/alpha", "mine/beta"]
    assert catalog.get("mine/alpha").store == "mine"
    before = snapshots(tmp_path, "mine")

    again = catalog.sync_store("mine")
    assert not again.changed and again.revision == first.revision
    assert snapshots(tmp_path, "mine") == before, "unchanged content is not swapped"

    (source / "apps" / "alpha" / "compose.yaml").write_text(
        "services:\n  web:\n    image: stackhub-test/web:2\n")
    changed = catalog.sync_store("mine")
    assert changed.changed and changed.revision != first.revision
    assert catalog.get("mine/alpha").compose["services"]["web"]["image"] == "stackhub-test/web:2"
    assert snapshots(tmp_path, "mine") != before and len(snapshots(tmp_path, "mine")) == 1
    store = catalog.store("mine")
    assert store.last_sync and store.last_error is None and store.app_count == 2


def test_content_hash_ignores_mtime_but_not_renames(tmp_path: Path) -> None:
    source = write_store(tmp_path / "src", ["alpha"])
    catalog = open_catalog(tmp_path)
    catalog.add("mine", str(source), local=True)
    first = catalog.sync_store("mine").revision
    os.utime(source / "apps" / "alpha" / "icon.png", (1, 1))
    assert catalog.sync_store("mine").revision == first
    (source / "apps" / "alpha" / "icon.png").rename(source / "apps" / "alpha" / "logo.png")
    assert catalog.sync_store("mine").revision != first


def test_broken_app_never_breaks_the_store(tmp_path: Path) -> None:
    source = write_store(tmp_path / "src", ["alpha"])
    write_broken(source, "broken")
    write_broken(source, "huge", manifest="x: " + "a" * (600 * 1024))
    catalog = open_catalog(tmp_path)
    catalog.add("mine", str(source), local=True)
    result = catalog.sync_store("mine")
    assert result.app_count == 1
    assert sorted(e.split(":")[0] for e in result.app_errors) == ["broken", "huge"]
    assert catalog.store("mine").app_errors == result.app_errors


def test_failed_sync_keeps_previous_catalog(tmp_path: Path) -> None:
    source = write_store(tmp_path / "src", ["alpha", "beta"])
    catalog = open_catalog(tmp_path)
    catalog.add("mine", str(source), local=True)
    good = catalog.sync_store("mine")
    before = snapshots(tmp_path, "mine")

    # every app broken: nothing readable, so the sync fails as a whole
    for app in ("alpha", "beta"):
        (source / "apps" / app / "stackhub-app.yaml").write_text("format: [")
    with pytest.raises(StoreError, match="no readable apps"):
        catalog.sync_store("mine")
    assert [a.id for a in catalog.list()] == ["mine/alpha", "mine/beta"]
    assert catalog.get("mine/beta").version == "1.0.0"
    store = catalog.store("mine")
    assert store.revision == good.revision and "no readable apps" in (store.last_error or "")
    assert snapshots(tmp_path, "mine") == before
    assert catalog.asset("mine", "alpha")[1] == ".png", "files of the old snapshot still serve"
    assert not [p for p in (tmp_path / "stores").iterdir() if p.name.startswith(".sync-")]

    # repairing the source brings back the same content: unchanged, and the error clears
    write_store(source, ["alpha", "beta"])
    assert not catalog.sync_store("mine").changed
    assert catalog.store("mine").last_error is None


def test_failure_inside_index_transaction_rolls_back(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_store(tmp_path / "src", ["alpha"])
    catalog = open_catalog(tmp_path)
    catalog.add("mine", str(source), local=True)
    catalog.sync_store("mine")
    before = snapshots(tmp_path, "mine")
    write_app(source, "gamma")

    from stackhub.catalog import sync

    def explode(conn: object, store: str) -> list[str]:
        raise OSError("disk full")

    monkeypatch.setattr(sync, "flag_updates", explode)
    with pytest.raises(StoreError, match="disk full"):
        catalog.sync_store("mine")
    assert [a.id for a in catalog.list()] == ["mine/alpha"]
    assert catalog.search("gamma") == []
    assert snapshots(tmp_path, "mine") == before


def test_git_store_change_detection_by_commit(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "system_resolve", lambda host, port: ["93.184.215.14"])
    git = FakeGit()
    repo = write_store(tmp_path / "repo", ["alpha"])
    git.publish("https://git.example/store.git", repo, "a" * 40)
    catalog = open_catalog(tmp_path, git=git)
    catalog.add("community", "https://git.example/store.git", branch="main")
    assert catalog.sync_store("community").changed
    assert git.clones == 1
    assert not catalog.sync_store("community").changed
    assert git.clones == 1, "an unchanged remote head is not cloned again"
    write_app(repo, "beta")
    git.publish("https://git.example/store.git", repo, "b" * 40)
    result = catalog.sync_store("community")
    assert result.changed and result.revision == "b" * 40 and git.clones == 2
    assert {a.app for a in catalog.list(store="community")} == {"alpha", "beta"}
    assert catalog.sync_store("community", force=True).changed and git.clones == 3
    assert set(git.addresses) == {"93.184.215.14"}, "git connects only to the checked address"


def test_failed_git_sync_records_error(tmp_path: Path) -> None:
    git = FakeGit()
    catalog = open_catalog(tmp_path, git=git)
    catalog.add("gone", "/srv/nothing", kind=StoreKind.GIT, local=True)
    with pytest.raises(StoreError, match="not found"):
        catalog.sync_store("gone")
    assert "not found" in (catalog.store("gone").last_error or "")
    results = catalog.sync()
    assert [(r.store, r.error is not None) for r in results] == [("gone", True)]


def test_add_validation(tmp_path: Path) -> None:
    catalog = open_catalog(tmp_path)
    with pytest.raises(Invalid, match="store names"):
        catalog.add("Bad Name", "https://example.com/x.git")
    with pytest.raises(Invalid, match="local"):
        catalog.add("dir", str(tmp_path))
    with pytest.raises(Invalid, match="https"):
        catalog.add("plain", "http://example.com/store.git")
    with pytest.raises(Invalid, match="https"):
        catalog.add("file", "file:///srv/store")
    with pytest.raises(Invalid, match="branch"):
        catalog.add("opt", "/srv/store", branch="--upload-pack=touch /tmp/x", kind=StoreKind.GIT,
                    local=True)
    with pytest.raises(Invalid, match="internal address"):
        catalog.add("loop", "https://127.0.0.1/store.zip")
    catalog.add("dir", str(tmp_path), local=True)
    with pytest.raises(AlreadyExists):
        catalog.add("dir", str(tmp_path), local=True)
    assert catalog.add("arch", "http://127.0.0.1:9/store.tar.gz", local=True).kind == "archive"
    assert [s.position for s in catalog.stores()] == [1, 2]


def test_remove_store_drops_index_and_files(tmp_path: Path) -> None:
    source = write_store(tmp_path / "src", ["alpha"])
    catalog = open_catalog(tmp_path)
    catalog.add("mine", str(source), local=True)
    catalog.sync_store("mine")
    catalog.remove("mine")
    assert catalog.list() == [] and catalog.search("alpha") == []
    assert not (tmp_path / "stores" / "mine").exists()
    with pytest.raises(NotFound):
        catalog.get("mine/alpha")
    with pytest.raises(NotFound):
        catalog.remove("mine")


def test_symlinks_in_a_store_are_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root password")
    source = write_store(tmp_path / "src", ["alpha"], icon=False)
    (source / "apps" / "alpha" / "icon.png").symlink_to(secret)
    catalog = open_catalog(tmp_path)
    catalog.add("mine", str(source), local=True)
    catalog.sync_store("mine")
    with pytest.raises(NotFound):
        catalog.asset("mine", "alpha")
    copied = list((tmp_path / "stores" / "mine").rglob("icon.png"))
    assert copied == []


def test_updates_flagged_after_sync(tmp_path: Path) -> None:
    source = write_store(tmp_path / "src", ["alpha", "beta", "gamma"])
    catalog = open_catalog(tmp_path)
    catalog.add("mine", str(source), local=True)
    catalog.sync_store("mine")
    add_instance(catalog, "a1", "mine/alpha", "1.0.0", 1)
    add_instance(catalog, "b1", "mine/beta", "1.0.0", 1)
    add_instance(catalog, "g1", "mine/gamma", "2.0.0", 1)
    assert catalog.sync_store("mine").updates == []
    write_app(source, "alpha", version="1.1.0")
    write_app(source, "beta", revision=2)
    result = catalog.sync_store("mine")
    assert sorted(result.updates) == ["a1", "b1"]
    assert update_flag(catalog, "a1") == "1.1.0"
    assert update_flag(catalog, "b1") == "1.0.0 (revision 2)"
    assert update_flag(catalog, "g1") is None, "an older store version is not an update"
    write_app(source, "alpha", version="1.0.0")
    catalog.sync_store("mine")
    assert update_flag(catalog, "a1") is None, "the flag clears when the store goes back"


def test_installing_a_dependency_refreshes_problems(tmp_path: Path) -> None:
    app = tmp_path / "umbrel" / "lightning"
    app.mkdir(parents=True)
    (app / "umbrel-app.yml").write_text(
        "manifestVersion: 1\nid: lightning\nname: Lightning\ntagline: Fast payments\n"
        "category: finance\nversion: '1.0.0'\nport: 3000\ndependencies: [bitcoin]\n")
    (app / "docker-compose.yml").write_text(
        "services:\n  app_proxy:\n    environment:\n      APP_HOST: lightning_web_1\n"
        "      APP_PORT: 80\n  web:\n    image: stackhub-test/web:1\n")
    catalog = open_catalog(tmp_path)
    catalog.add("umbrel", str(tmp_path / "umbrel"), local=True)
    catalog.sync_store("umbrel")
    summary = catalog.list()[0]
    assert summary.format == "umbrel" and not summary.installable
    assert summary.problems == ["needs the app 'bitcoin', which this store does not offer"]
    before = snapshots(tmp_path, "umbrel")

    add_instance(catalog, "btc", "other/bitcoin", "27.0", 1)
    result = catalog.sync_store("umbrel")
    assert not result.changed, "the content did not change..."
    assert catalog.list()[0].installable, "...but the index was rebuilt for the new instance"
    assert snapshots(tmp_path, "umbrel") == before
    assert catalog.get("umbrel/lightning").problems == []


def test_only_images_are_served_as_assets(tmp_path: Path) -> None:
    source = write_store(tmp_path / "src", ["alpha"], icon=False)
    manifest = source / "apps" / "alpha" / "stackhub-app.yaml"
    manifest.write_text(manifest.read_text().replace('"category"',
                                                     '"icon": "compose.yaml", "category"'))
    catalog = open_catalog(tmp_path)
    catalog.add("mine", str(source), local=True)
    catalog.sync_store("mine")
    with pytest.raises(NotFound):
        catalog.asset("mine", "alpha")


def test_store_size_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stackhub.catalog import snapshot

    source = write_store(tmp_path / "src", ["alpha", "beta"])
    catalog = open_catalog(tmp_path)
    catalog.add("mine", str(source), local=True)
    monkeypatch.setattr(snapshot, "MAX_FILES", 3)
    monkeypatch.setattr(snapshot.copy_tree, "__kwdefaults__", {"max_files": 3,
                                                               "max_bytes": 10**6})
    with pytest.raises(StoreError, match="more than 3 files"):
        catalog.sync_store("mine")
    assert catalog.list() == [] and catalog.store("mine").last_error


def test_each_store_has_its_own_size_cap(tmp_path: Path) -> None:
    source = write_store(tmp_path / "src", ["alpha"])
    (source / "apps" / "alpha" / "screenshot.png").write_bytes(b"p" * (1536 * 1024))
    catalog = open_catalog(tmp_path)
    small = catalog.add("small", str(source), local=True, max_bytes=1024 * 1024)
    assert small.max_size_mb == 1
    with pytest.raises(StoreError, match="larger than 1048576 bytes"):
        catalog.sync_store("small")
    assert catalog.list() == [] and catalog.store("small").last_error
    roomy = catalog.add("roomy", str(source), local=True)
    assert roomy.max_size_mb == 300
    assert catalog.sync_store("roomy").app_count == 1


def test_staging_left_by_a_crash_is_cleaned_at_start(tmp_path: Path) -> None:
    leftover = tmp_path / "stores" / ".sync-mine-abc123" / "tree"
    leftover.mkdir(parents=True)
    (leftover / "half.txt").write_text("half written")
    open_catalog(tmp_path)
    assert not (tmp_path / "stores" / ".sync-mine-abc123").exists()


def test_featured_apps_and_recent_changes(tmp_path: Path) -> None:
    source = write_store(tmp_path / "src", ["alpha", "beta", "gamma"])
    (source / "featured-apps.json").write_text(
        '[{"appid": "Beta"}, {"appid": "missing"}, {"other": 1}, "x"]')
    catalog = open_catalog(tmp_path)
    catalog.add("mine", str(source), local=True)
    catalog.sync_store("mine")
    assert [a.id for a in catalog.list(featured=True)] == ["mine/beta"]
    assert [a.featured for a in catalog.list()] == [False, True, False]
    assert catalog.list(recent=True) == [], "a first index knows no dates"
    write_app(source, "gamma", version="2.0.0")  # a new version, then a new app
    write_app(source, "delta")
    catalog.sync_store("mine")
    recent = catalog.list(recent=True)
    assert sorted(a.id for a in recent) == ["mine/delta", "mine/gamma"]
    assert all(a.updated_at for a in recent)
    stamp = {a.id: a.updated_at for a in recent}
    (source / "apps" / "alpha" / "extra.txt").write_text("content change, same version\n")
    catalog.sync_store("mine")
    assert {a.id: a.updated_at for a in catalog.list(recent=True)} == stamp
    assert len(catalog.list(limit=2)) == 2


def test_a_broken_featured_file_features_nothing(tmp_path: Path) -> None:
    source = write_store(tmp_path / "src", ["alpha"])
    (source / "featured-apps.json").write_text("{not json")
    catalog = open_catalog(tmp_path)
    catalog.add("mine", str(source), local=True)
    assert catalog.sync_store("mine").app_count == 1
    assert catalog.list(featured=True) == []
