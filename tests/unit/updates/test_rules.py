"""The update rules that need no engine: version order, database major changes."""

from __future__ import annotations

import pytest

from stackhub.updates.service import check_interval, database_major_changes, major_of, version_key


def test_version_key_orders_numbers_not_text() -> None:
    assert version_key("v1.10.0") > version_key("1.9.3")  # type: ignore[operator]
    assert version_key("2.0.0") == (2, 0, 0)
    assert version_key("latest") is None


def test_major_of_reads_the_tag() -> None:
    assert major_of("postgres:15.4-alpine") == "15"
    assert major_of("127.0.0.1:5000/library/postgres:16") == "16"
    assert major_of("postgres") is None
    assert major_of("mariadb:v11.2") == "11"


def _compose(**images: str) -> dict[str, object]:
    return {"services": {name: {"image": image} for name, image in images.items()}}


def test_a_database_major_change_is_found_and_others_are_not() -> None:
    old = _compose(db="postgres:15.4", web="nextcloud:27")
    assert database_major_changes(old, _compose(db="postgres:15.6", web="nextcloud:28")) == []
    found = database_major_changes(old, _compose(db="postgres:16.1", web="nextcloud:27"))
    assert found == ["service db: postgres:15.4 -> postgres:16.1"]
    assert database_major_changes(_compose(db="mariadb:10.11"), _compose(db="mariadb:11.4"))
    assert database_major_changes(_compose(db="library/mongo:6"), _compose(db="mongo:7"))
    assert not database_major_changes(_compose(cache="redis:6"), _compose(cache="redis:7"))


def test_check_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STACKHUB_UPDATE_CHECK_INTERVAL", raising=False)
    assert check_interval() == 24 * 3600
    monkeypatch.setenv("STACKHUB_UPDATE_CHECK_INTERVAL", "0")
    assert check_interval() == 0
    monkeypatch.setenv("STACKHUB_UPDATE_CHECK_INTERVAL", "soon")
    assert check_interval() == 24 * 3600
