"""The operations journal in SQLite: start, steps, finish, pages and filters."""

from __future__ import annotations

import pytest

from stackhub.apps.models import InstanceStatus, OperationState
from stackhub.errors import NotFound
from stackhub.operations.journal import Journal, OperationFilter
from stackhub.services import Services

from ..support import create_instance, instance_record


@pytest.fixture
def journal(services: Services) -> Journal:
    return Journal(services.db)


def test_missing_operation(journal: Journal) -> None:
    with pytest.raises(NotFound, match="no operation"):
        journal.operation("0" * 32)


def test_create_journals_a_running_install(services: Services, journal: Journal) -> None:
    op = create_instance(services.records, instance_record("blog"))
    assert (op.instance, op.kind, op.state, op.progress, op.target) == (
        "blog", "install", OperationState.RUNNING, 0.0, None)
    assert journal.prior_status(op.id) is None  # nothing before an install
    assert [o.id for o in journal.running()] == [op.id]


def test_steps_progress_engine_flag_and_history(services: Services, journal: Journal) -> None:
    op = create_instance(services.records, instance_record("blog", status="installing"))
    journal.step(op.id, "pull", 10.0)
    journal.step(op.id, "pull", 30.0)  # same step: progress only, no new row
    assert not journal.touched_engine(op.id)
    journal.step(op.id, "start", 60.0, created_engine=True)
    journal.step(op.id, "verify", 95.0)  # the flag never goes back
    assert journal.touched_engine(op.id)
    assert not journal.touched_engine("unknown")
    got = journal.operation(op.id)
    assert (got.step, got.progress) == ("verify", 95.0)
    assert [s.name for s in got.steps] == ["pull", "start", "verify"]
    assert got.steps[0].finished_at == got.steps[1].started_at
    assert got.steps[0].duration is not None and got.steps[0].duration >= 0
    assert got.steps[-1].finished_at is None and got.duration is None  # still running
    journal.finish(op.id, OperationState.SUCCEEDED, instance_status=InstanceStatus.RUNNING)
    done = journal.operation(op.id)
    assert done.steps[-1].finished_at == done.finished_at and done.duration is not None


def test_finish_success_sets_status_and_full_progress(services: Services,
                                                     journal: Journal) -> None:
    op = create_instance(services.records, instance_record("blog", status="installing"))
    journal.finish(op.id, OperationState.SUCCEEDED, instance_status=InstanceStatus.RUNNING)
    got = journal.operation(op.id)
    assert (got.state, got.progress, got.error) == (OperationState.SUCCEEDED, 100.0, None)
    assert got.finished_at is not None
    assert services.records.get("blog").status == "running"


def test_finish_failure_records_the_error(services: Services, journal: Journal) -> None:
    op = create_instance(services.records, instance_record("blog", status="installing"))
    journal.step(op.id, "pull", 20.0)
    journal.finish(op.id, OperationState.FAILED, instance_status=InstanceStatus.FAILED,
                   error="boom")
    got = journal.operation(op.id)
    assert (got.state, got.progress, got.error) == (OperationState.FAILED, 20.0, "boom")
    record = services.records.get("blog")
    assert (record.status, record.error) == ("failed", "boom")


def test_finish_without_status_leaves_the_instance(services: Services, journal: Journal) -> None:
    op = create_instance(services.records, instance_record("blog"))
    journal.finish(op.id, OperationState.FAILED, instance_status=None, error="x")
    record = services.records.get("blog")
    assert record.status == "running" and record.error is None


def test_start_keeps_prior_status_sets_new_one_and_clears_error(services: Services,
                                                                journal: Journal) -> None:
    first = create_instance(services.records, instance_record("blog", status="installing"))
    journal.finish(first.id, OperationState.FAILED, instance_status="failed", error="boom")
    op = journal.start("install", "blog", status=InstanceStatus.INSTALLING)
    record = services.records.get("blog")
    assert (record.status, record.error) == ("installing", None)
    assert journal.prior_status(op.id) == "failed"
    assert {o.id for o in journal.running()} == {op.id}
    assert {o.id for o in journal.operations("blog")} == {first.id, op.id}


def test_a_second_instance_is_journaled_and_marked(services: Services, journal: Journal) -> None:
    create_instance(services.records, instance_record("blog"))
    create_instance(services.records, instance_record("copy", status="installing"))
    op = journal.start("clone", "blog", status=None, target="copy")
    assert op.target == "copy"
    assert journal.page(OperationFilter(instance="copy")).items[0].id == op.id  # newest first
    journal.finish(op.id, OperationState.FAILED, instance_status=None, error="disk",
                   target_status=InstanceStatus.FAILED)
    assert services.records.get("copy").status == "failed"
    assert services.records.get("blog").status == "running"
    assert {"blog", "copy"} <= journal.instances_journaled()


def test_pages_filters_and_totals(services: Services, journal: Journal) -> None:
    create_instance(services.records, instance_record("blog"))
    create_instance(services.records, instance_record("wiki"))
    restarts = []
    for _ in range(3):
        restarts.append(journal.start("restart", "blog", status=None))
    journal.finish(restarts[0].id, OperationState.FAILED, instance_status=None, error="x")
    assert journal.page(OperationFilter(instance="blog")).total == 4
    assert journal.page(OperationFilter(instance="wiki")).total == 1
    assert journal.page(OperationFilter(kind="restart")).total == 3
    failed = journal.page(OperationFilter(state=OperationState.FAILED))
    assert [o.id for o in failed.items] == [restarts[0].id]
    page = journal.page(OperationFilter(), limit=2, offset=0)
    rest = journal.page(OperationFilter(), limit=2, offset=2)
    assert (page.total, len(page.items), len(rest.items)) == (5, 2, 2)
    assert not {o.id for o in page.items} & {o.id for o in rest.items}
    newest_first = [o.started_at for o in page.items + rest.items]
    assert newest_first == sorted(newest_first, reverse=True)
    assert journal.page(OperationFilter(kind="backup")).items == []
