"""Instance records in SQLite, created with their first journaled operation."""

from __future__ import annotations

import pytest

from stackhub.apps.models import OperationState
from stackhub.errors import AlreadyExists, NotFound
from stackhub.operations.journal import Journal
from stackhub.services import Services
from stackhub.state.instances import Records

from ..support import create_instance, instance_record


@pytest.fixture
def records(services: Services) -> Records:
    return services.records


def test_create_and_read_back(records: Records) -> None:
    op = create_instance(records, instance_record("blog", ports=[("web", 8080, 80)]))
    assert (op.instance, op.kind, op.state, op.progress) == ("blog", "install",
                                                            OperationState.RUNNING, 0.0)
    record = records.get("blog")
    assert record.status == "running"
    assert record.ports[0].host_port == 8080
    assert record.parameters == {"TITLE": "t", "DB_PASSWORD": "hidden-secret"}
    assert record.secret_names == ["DB_PASSWORD"]
    assert record.definition["id"] == "blog"
    assert record.created_at and record.created_at == record.updated_at
    assert records.find("blog") == record
    assert [r.name for r in records.all()] == ["blog"]


def test_duplicate_is_refused_and_leaves_no_operation(records: Records) -> None:
    create_instance(records, instance_record("blog"))
    with pytest.raises(AlreadyExists, match="'blog' already exists"):
        create_instance(records, instance_record("blog"))
    assert len(Journal(records.db).operations("blog")) == 1


def test_missing_instance(records: Records) -> None:
    assert records.find("nope") is None
    with pytest.raises(NotFound, match="no instance named 'nope'"):
        records.get("nope")


def test_delete_keeps_the_journal(records: Records) -> None:
    op = create_instance(records, instance_record("blog"))
    records.delete("blog")
    assert records.find("blog") is None
    journal = Journal(records.db)
    assert journal.operation(op.id).instance == "blog"
    assert [o.id for o in journal.operations()] == [op.id]


def test_held_ports(records: Records) -> None:
    create_instance(records, instance_record("blog", ports=[("web", 8080, 80), ("api", 8081, 81)]),
                   "install")
    create_instance(records, instance_record("wiki", ports=[("web", 9000, 80)]))
    assert records.held_ports() == {8080: "instance blog", 8081: "instance blog",
                                    9000: "instance wiki"}
    assert records.held_ports(exclude="blog") == {9000: "instance wiki"}


def test_update_available_flag(records: Records) -> None:
    create_instance(records, instance_record("blog"))
    records.set_update_available("blog", "2.0")
    assert records.get("blog").update_available == "2.0"
    records.set_update_available("blog", None)
    assert records.get("blog").update_available is None
