"""The StackHub format's `backup` section (hot backups): read, and bad input refused clearly."""

from __future__ import annotations

import pytest

from stackhub.catalog.readers.stackhub import parse_app
from stackhub.errors import Invalid

from ..support import COMPOSE, MANIFEST

GOOD = """\
backup:
  service: db
  dump: [pg_dump, -U, postgres, -f, /var/lib/postgresql/data/dump.sql]
  timeout: 120
  skip: [cache, db/live.sqlite]
  skip_volumes: [dbdata]
"""


def test_backup_section_is_read_into_the_app() -> None:
    app = parse_app(MANIFEST + GOOD, COMPOSE)
    assert app.backup is not None
    assert (app.backup.service, app.backup.timeout) == ("db", 120)
    assert app.backup.dump == ["pg_dump", "-U", "postgres", "-f",
                               "/var/lib/postgresql/data/dump.sql"]
    assert app.backup.skip == ["cache", "db/live.sqlite"]
    assert app.backup.skip_volumes == ["dbdata"]
    stored = app.model_dump(mode="json")["backup"]
    assert stored["dump"][0] == "pg_dump" and stored["timeout"] == 120


def test_apps_without_the_section_use_stop_mode() -> None:
    assert parse_app(MANIFEST, COMPOSE).backup is None


@pytest.mark.parametrize(("section", "message"), [
    ("backup: {service: db}\n", "backup.dump: Field required"),
    ("backup: {service: db, dump: []}\n", "backup.dump: List should have at least 1 item"),
    ("backup: {service: db, dump: 'pg_dump -f x'}\n", "backup.dump: Input should be a valid list"),
    ("backup: {service: db, dump: ['', x]}\n", "the program) is empty"),
    ("backup: {service: cache, dump: [x]}\n", "service 'cache' is not in the compose"),
    ("backup: {service: db, dump: [x], timeout: 0}\n", "backup.timeout"),
    ("backup: {service: db, dump: [x], timeout: 999999}\n", "backup.timeout"),
    ("backup: {service: db, dump: [x], skip: [../etc]}\n", "without '..'"),
    ("backup: {service: db, dump: [x], skip: [/etc/passwd]}\n", "must be relative"),
    ("backup: {service: db, dump: [x], skip: ['db/*.sqlite']}\n", "globs"),
    ("backup: {service: db, dump: [x], skip: [a/./b]}\n", "without '..', '.'"),
    ("backup: {service: db, dump: [x], skip_volumes: [pgdata]}\n", "does not declare"),
    ("backup: {service: db, dump: [x], skip_volumes: ['../v']}\n", "is not a volume key"),
    ("backup: {service: db, dump: [x], mode: hot}\n", "backup.mode: Extra inputs"),
])
def test_bad_backup_sections_are_refused_with_a_clear_message(section: str,
                                                              message: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_app(MANIFEST + section, COMPOSE)
    assert message in caught.value.message
