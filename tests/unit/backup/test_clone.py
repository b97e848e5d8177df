"""Clone refusals: each is checked before anything is journaled, and changes nothing."""

from __future__ import annotations

import pytest

from stackhub.backup.models import CloneRequest
from stackhub.errors import AlreadyExists, Conflict, Invalid, NotFound
from stackhub.operations.journal import OperationFilter
from stackhub.operations.models import OperationState
from stackhub.services import Services
from tests.unit.support import create_instance, instance_record


def _installed(live: Services, name: str, status: str = "running") -> None:
    op = create_instance(live.records, instance_record(name))
    live.runner.journal.finish(op.id, OperationState.SUCCEEDED, instance_status=status)


def _state(live: Services) -> tuple[int, list[str]]:
    ops = live.runner.journal.page(OperationFilter(), limit=50).total
    return ops, sorted(r.name for r in live.records.all())


@pytest.mark.parametrize(("new", "error", "text"), [
    ("other", AlreadyExists, "already exists"),
    ("blog", Invalid, "other than the original"),
    ("Bad_Name", Invalid, "is not allowed"),
    ("-x", Invalid, "is not allowed"),
])
async def test_bad_names_are_refused_and_nothing_changes(live: Services, new: str,
                                                         error: type[Exception],
                                                         text: str) -> None:
    _installed(live, "blog")
    _installed(live, "other")
    before = _state(live)
    with pytest.raises(error) as raised:
        await live.cloner.clone("blog", CloneRequest(name=new))
    assert text in str(raised.value)
    assert _state(live) == before


async def test_a_kept_folder_of_the_new_name_is_refused(live: Services) -> None:
    _installed(live, "blog")
    live.paths.instance_data("copy").mkdir(parents=True)
    with pytest.raises(AlreadyExists, match="kept from an earlier instance"):
        await live.cloner.clone("blog", CloneRequest(name="copy"))
    assert live.records.find("copy") is None


async def test_a_busy_failed_or_missing_source_is_refused(live: Services) -> None:
    _installed(live, "blog")
    _installed(live, "broken", status="failed")
    before = _state(live)
    live.runner._held.add("blog")  # another operation holds it
    try:
        with pytest.raises(Conflict, match="busy"):
            await live.cloner.clone("blog", CloneRequest(name="copy"))
    finally:
        live.runner._held.discard("blog")
    with pytest.raises(Conflict, match="failed"):
        await live.cloner.clone("broken", CloneRequest(name="copy"))
    with pytest.raises(NotFound):
        await live.cloner.clone("nope", CloneRequest(name="copy"))
    assert _state(live) == before
