"""Instance and operation records in SQLite."""

from __future__ import annotations

import pytest

from stackhub.apps.models import InstanceStatus, OperationState
from stackhub.apps.records import Records
from stackhub.errors import AlreadyExists, NotFound
from stackhub.services import Services

from ..support import instance_record


@pytest.fixture
def records(services: Services) -> Records:
    return services.records


def test_create_and_read_back(records: Records) -> None:
    op = records.create(instance_record("blog", ports=[("web", 8080, 80)]), "install")
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
    records.create(instance_record("blog"), "install")
    with pytest.raises(AlreadyExists, match="'blog' already exists"):
        records.create(instance_record("blog"), "install")
    assert len(records.operations("blog")) == 1


def test_missing_instance_and_operation(records: Records) -> None:
    assert records.find("nope") is None
    with pytest.raises(NotFound, match="no instance named 'nope'"):
        records.get("nope")
    with pytest.raises(NotFound, match="no operation"):
        records.operation("0" * 32)


def test_steps_progress_and_engine_flag(records: Records) -> None:
    op = records.create(instance_record("blog", status="installing"), "install")
    records.step(op.id, "pull", 30.0)
    assert not records.touched_engine(op.id)
    records.step(op.id, "start", 60.0, created_engine=True)
    records.step(op.id, "verify", 95.0)  # the flag never goes back
    assert records.touched_engine(op.id)
    got = records.operation(op.id)
    assert (got.step, got.progress) == ("verify", 95.0)
    assert not records.touched_engine("unknown")


def test_finish_success_sets_status_and_full_progress(records: Records) -> None:
    op = records.create(instance_record("blog", status="installing"), "install")
    records.finish(op.id, OperationState.SUCCEEDED, instance_status=InstanceStatus.RUNNING)
    got = records.operation(op.id)
    assert (got.state, got.progress, got.error) == (OperationState.SUCCEEDED, 100.0, None)
    assert got.finished_at is not None
    assert records.get("blog").status == "running"


def test_finish_failure_records_the_error(records: Records) -> None:
    op = records.create(instance_record("blog", status="installing"), "install")
    records.step(op.id, "pull", 20.0)
    records.finish(op.id, OperationState.FAILED, instance_status=InstanceStatus.FAILED,
                   error="boom")
    got = records.operation(op.id)
    assert (got.state, got.progress, got.error) == (OperationState.FAILED, 20.0, "boom")
    assert (records.get("blog").status, records.get("blog").error) == ("failed", "boom")


def test_finish_without_status_leaves_the_instance(records: Records) -> None:
    op = records.create(instance_record("blog"), "install")
    records.finish(op.id, OperationState.FAILED, instance_status=None, error="x")
    assert records.get("blog").status == "running" and records.get("blog").error is None


def test_start_operation_sets_status_and_clears_error(records: Records) -> None:
    first = records.create(instance_record("blog", status="installing"), "install")
    records.finish(first.id, OperationState.FAILED, instance_status="failed", error="boom")
    op = records.start_operation("blog", "install", InstanceStatus.INSTALLING)
    record = records.get("blog")
    assert (record.status, record.error) == ("installing", None)
    assert {o.id for o in records.running_operations()} == {op.id}
    assert {o.id for o in records.operations("blog")} == {first.id, op.id}


def test_delete_keeps_the_journal(records: Records) -> None:
    op = records.create(instance_record("blog"), "install")
    records.delete("blog")
    assert records.find("blog") is None
    assert records.operation(op.id).instance == "blog"
    assert [o.id for o in records.operations()] == [op.id]


def test_held_ports(records: Records) -> None:
    records.create(instance_record("blog", ports=[("web", 8080, 80), ("api", 8081, 81)]),
                   "install")
    records.create(instance_record("wiki", ports=[("web", 9000, 80)]), "install")
    assert records.held_ports() == {8080: "instance blog", 8081: "instance blog",
                                    9000: "instance wiki"}
    assert records.held_ports(exclude="blog") == {9000: "instance wiki"}


def test_update_available_flag(records: Records) -> None:
    records.create(instance_record("blog"), "install")
    records.set_update_available("blog", "2.0")
    assert records.get("blog").update_available == "2.0"
    records.set_update_available("blog", None)
    assert records.get("blog").update_available is None


def test_operations_limit_and_filter(records: Records) -> None:
    records.create(instance_record("blog"), "install")
    records.create(instance_record("wiki"), "install")
    for _ in range(3):
        records.start_operation("blog", "restart", "running")
    assert len(records.operations("blog")) == 4
    assert len(records.operations("wiki")) == 1
    assert len(records.operations(limit=2)) == 2
