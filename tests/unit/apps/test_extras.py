"""Fields other domains own in the instance views (apps/extras.py): the last good backup."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from stackhub.apps.extras import LastBackup, last_backups
from stackhub.services import Services
from tests.unit.proxy.test_service import install


async def test_the_last_good_backup_of_every_instance_in_one_query(live: Services) -> None:
    await install(live, "web", 18343)
    await install(live, "other", 18344)
    await install(live, "third", 18345)
    store = live.backups.store
    store.succeeded("web", "abc123", "local", datetime(2026, 3, 1, 2, 3, 4, tzinfo=UTC))
    store.failed("web", "later failure", datetime(2026, 3, 3, tzinfo=UTC))
    store.failed("other", "boom", datetime(2026, 3, 2, tzinfo=UTC))
    calls: list[int] = []

    def counted() -> Mapping[str, LastBackup]:
        calls.append(1)
        return store.lasts()

    live.apps.extras[-1] = last_backups(counted)
    found = {i.name: i.last_backup_at for i in live.apps.views(live.apps.records.all())}
    # a later failure leaves the last good one; a failure alone is no good backup
    assert found == {"other": None, "third": None, "web": "2026-03-01T02:03:04Z"}
    assert len(calls) == 1
    (web,) = live.apps.views([live.apps.records.get("web")])
    assert web.last_backup_at == "2026-03-01T02:03:04Z"
    assert len(calls) == 2
    live.apps.all()  # StackHub's own reads (the gateway's spec, its ask answer) skip the fill
    live.apps.get("web")
    assert len(calls) == 2
