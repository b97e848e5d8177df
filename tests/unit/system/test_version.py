"""StackHub's own version: comparison, the database's record, the refusal, the release source."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stackhub import version as versions
from stackhub.api.app import create_app
from stackhub.errors import Invalid, StackHubError
from stackhub.services import Services
from stackhub.state import versioning
from stackhub.state.db import Database
from stackhub.state.migrations import MIGRATIONS
from stackhub.system import version_views


def _meta(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT key, value FROM stackhub_meta").fetchall())


def _set(db: Path, sql: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute(sql)
    conn.commit()
    conn.close()


@pytest.mark.parametrize(("newer", "older"), [
    ("0.2.0", "0.1.0"), ("0.10.0", "0.9.9"), ("1.0", "1.0rc1"), ("1.0rc2", "1.0rc1"),
    ("1.0b1", "1.0a9"), ("1.0a1", "1.0.dev3"), ("1.0.post1", "1.0"), ("v2", "1.99")])
def test_versions_compare_as_releases(newer: str, older: str) -> None:
    assert versions.is_newer(newer, older)
    assert not versions.is_newer(older, newer)


def test_equal_versions_are_not_newer() -> None:
    assert not versions.is_newer("1.0.0", "1.0")
    assert not versions.is_newer("0.1.0+local", "0.1.0")
    assert versions.valid("0.2.0") and versions.valid("1.2.3rc1") and not versions.valid("x")


def test_a_new_database_records_the_running_version(tmp_path: Path) -> None:
    Database(tmp_path / "s.db")
    assert _meta(tmp_path / "s.db") == {"version": versions.installed()}


def test_an_upgrade_keeps_the_previous_version(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    Database(db).close()
    _set(db, "UPDATE stackhub_meta SET value='0.0.1' WHERE key='version'")
    Database(db)
    meta = _meta(db)
    assert meta["version"] == versions.installed()
    assert meta["previous_version"] == "0.0.1" and meta["upgraded_at"]


def test_a_database_of_a_stackhub_without_a_record_is_migrated(tmp_path: Path) -> None:
    """An older release's database (one migration short, no version) is upgraded."""
    db = tmp_path / "s.db"
    conn = sqlite3.connect(db, isolation_level=None)
    for script in MIGRATIONS[:-1]:
        conn.executescript(script)
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) - 1}")
    conn.close()
    Database(db)
    assert _meta(db)["previous_version"] == f"schema {len(MIGRATIONS) - 1}"
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_a_newer_schema_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    Database(db).close()
    _set(db, f"PRAGMA user_version={len(MIGRATIONS) + 3}")
    _set(db, "UPDATE stackhub_meta SET value='9.1.0' WHERE key='version'")
    before = _meta(db)
    with pytest.raises(versioning.NewerDatabase) as refused:
        Database(db)
    text = refused.value.message
    assert "StackHub 9.1.0" in text and f"this is StackHub {versions.installed()}" in text
    assert f"schema {len(MIGRATIONS) + 3}" in text and "Nothing was changed" in text
    assert "install.sh" in text and "stackhub>=9.1.0" in text
    assert _meta(db) == before
    with pytest.raises(versioning.NewerDatabase):
        versioning.check_file(db)


def test_a_newer_recorded_version_on_the_same_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    Database(db).close()
    _set(db, "UPDATE stackhub_meta SET value='99.0.0' WHERE key='version'")
    with pytest.raises(versioning.NewerDatabase, match=r"last used by StackHub 99\.0\.0"):
        Database(db)
    assert _meta(db) == {"version": "99.0.0"}


def test_the_release_source_is_read_and_bad_ones_are_named(tmp_path: Path) -> None:
    good = tmp_path / "latest.json"
    good.write_text(json.dumps({"version": "7.0.0", "url": "https://example.test/w.whl"}))
    assert versions.fetch_latest(str(good)).version == "7.0.0"
    assert versions.fetch_latest(good.as_uri()).url == "https://example.test/w.whl"
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(Invalid, match="not release JSON"):
        versions.fetch_latest(str(bad))
    bad.write_text(json.dumps({"version": "soon"}))
    with pytest.raises(Invalid, match="invalid version 'soon'"):
        versions.fetch_latest(str(bad))
    with pytest.raises(StackHubError, match="cannot read the release source"):
        versions.fetch_latest(str(tmp_path / "missing.json"))


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    version_views._cache.clear()
    token = services.paths.admin_token.read_text().strip()
    app = create_app(services.paths, services=services, public_host="host.test")
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as test_client:
        yield test_client


def test_version_api_without_a_source(client: TestClient,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(versions.SOURCE_ENV, raising=False)
    body = client.get("/api/system/version").json()
    assert body["version"] == versions.installed()
    assert body["schema_version"] == len(MIGRATIONS)
    assert body["source"] is None and body["update_available"] is False
    assert client.get("/api/health").json()["version"] == versions.installed()


def test_version_api_names_a_newer_release(client: TestClient, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "latest.json"
    source.write_text(json.dumps({"version": "99.0.0", "notes": "big"}))
    monkeypatch.setenv(versions.SOURCE_ENV, str(source))
    body = client.get("/api/system/version").json()
    assert body["update_available"] is True and body["latest"]["version"] == "99.0.0"
    source.write_text(json.dumps({"version": "0.0.1"}))
    cached = client.get("/api/system/version").json()
    assert cached["latest"]["version"] == "99.0.0"  # the 6-hour cache
    fresh = client.get("/api/system/version", params={"refresh": True}).json()
    assert fresh["latest"]["version"] == "0.0.1" and fresh["update_available"] is False
    source.write_text("[]")
    broken = client.get("/api/system/version", params={"refresh": True}).json()
    assert broken["latest"] is None and "not release JSON" in broken["error"]
