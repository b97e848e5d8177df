"""A failed repository check raises a console notification, and the next good check resolves
it (the real backup service, store, notify service and watcher; only restic is a stand-in)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from stackhub.adapters.restic import Repository
from stackhub.auth.models import Principal, Role
from stackhub.backup.scheduler import BackupScheduler
from stackhub.errors import RepositoryError
from stackhub.notify.models import Kind
from stackhub.notify.texts import render
from stackhub.notify.watch import Usage, Watcher
from tests.unit.backup.test_schedules import Recorder, wired

__all__ = ["wired"]  # the fixture, shared with test_schedules.py
ADMIN = Principal(name="alice", role=Role.ADMIN, via="session")
DAMAGED = ("using temporary cache in /tmp/restic-check\nload indexes\ncheck all packs\n"
           "error: pack 3f2a9c1e: not referenced in any index\nFatal: repository contains "
           "errors")


class Checker(Recorder):
    """restic's check: sound, or damaged when `bad` is set."""

    bad = False

    async def check(self, repo: Repository, *, read_data_subset: str | None = None) -> str:
        self.checks.append(read_data_subset)
        if self.bad:
            raise RepositoryError("restic check found errors",
                                  details={"output": DAMAGED, "packs": []})
        return "no errors were found"


async def test_failed_check_notifies_until_a_good_check(wired: Any, tmp_path: Path) -> None:
    live, clock, _fake, audits = wired
    service = live.backups
    fake = Checker()
    fake.bad = True
    service.restic = fake
    watch = Watcher(service=live.notify, instances=list, backups=list, domains=list,
                    root=tmp_path, usage=lambda _: Usage(100, 1, 99), checks=service.checks)

    def open_checks() -> list[Any]:
        return [n for n in live.notify.listing(ADMIN).items
                if n.kind is Kind.BACKUP_CHECK_FAILED and not n.resolved]

    watch.tick()
    assert open_checks() == []  # never checked: nothing to say

    created = service.repos.get("local").created_at.replace("Z", "+00:00")
    clock.now = datetime.fromisoformat(created) + timedelta(days=30, minutes=1)
    assert await BackupScheduler(service).tick() == {"check:local": False}
    assert audits[-1][:3] == ("backup.check", "local", False)
    [check] = service.checks()
    assert not check.ok and check.error == "error: pack 3f2a9c1e: not referenced in any index"
    assert check.next_check_at == (clock.now + timedelta(days=1)).isoformat(
        timespec="seconds").replace("+00:00", "Z")  # tried again the next day
    watch.tick()
    watch.tick()  # still one notice
    [notice] = open_checks()
    assert notice.params == {"repository": "local", "error": check.error}
    assert notice.link == "/backups" and notice.severity.value == "error"
    assert notice.text == render(Kind.BACKUP_CHECK_FAILED, notice.params)
    assert "local" in notice.text and "3f2a9c1e" in notice.text

    fake.bad = False  # the next good check (here by hand) resolves it
    assert (await service.check_repository("local")).ok
    watch.tick()
    assert open_checks() == []
    assert [n.resolved for n in live.notify.listing(ADMIN).items
            if n.kind is Kind.BACKUP_CHECK_FAILED] == [True]
    assert service.checks()[0].error is None
