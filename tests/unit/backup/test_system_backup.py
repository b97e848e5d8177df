"""`backup system` is an operation on `@system`: one at a time, progress, clean after a crash."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from stackhub.adapters.restic import BackupProgress, BackupSummary, Report, Repository, Snapshot
from stackhub.backup.system import DB_COPY, STAGE
from stackhub.backup.system_backup import SUBJECT, SYSTEM_BACKUP
from stackhub.errors import Conflict
from stackhub.events import Event
from stackhub.operations.journal import OperationFilter
from stackhub.services import Services

from .test_restore_checks import FakeRestic

SYSTEM_ID = "5e" * 32


class HeldRestic(FakeRestic):
    """A system backup that waits for `go`, reporting progress; it reads the staged database."""

    def __init__(self) -> None:
        super().__init__([], {})
        self.go = asyncio.Event()
        self.started = asyncio.Event()
        self.copied_state: list[str] = []
        self.made: list[str] = []

    async def backup(self, repo: Repository, paths: list[str], *, cwd: Path, tags: list[str],
                     host: str, report: Report | None = None, excludes: Sequence[Path] = (),
                     live: Sequence[str] = (),
                     released: Callable[[], None] | None = None) -> BackupSummary:
        copy = cwd / "backups" / "stage" / STAGE / DB_COPY
        with contextlib.closing(sqlite3.connect(copy)) as conn:
            self.copied_state = [r[0] for r in conn.execute(
                "SELECT state FROM operations WHERE kind = 'system-backup'")]
        self.started.set()
        if report is not None:
            report(BackupProgress(percent_done=0.5, total_bytes=200,
                                  bytes_done=100, seconds_remaining=3))
        await self.go.wait()
        self.made.append(SYSTEM_ID)
        return BackupSummary(snapshot_id=SYSTEM_ID[:8])

    async def snapshots(self, repo: Repository, *,
                        tags: list[str] | None = None) -> list[Snapshot]:
        return [Snapshot(id=i, short_id=i[:8], time="2026-01-01T00:00:00Z",
                         tags=["stackhub", "system", "kind=system"]) for i in self.made]


def _held(live: Services) -> HeldRestic:
    fake = HeldRestic()
    live.backups.restic = fake
    live.backups.system.restic = fake
    return fake


def _ops(live: Services) -> list[object]:
    return list(live.runner.journal.page(OperationFilter(instance=SUBJECT), limit=10).items)


async def test_a_second_system_backup_is_refused_while_one_runs(live: Services) -> None:
    fake = _held(live)
    events: list[Event] = []
    sub = live.bus.subscribe(lambda e: e.topic == "operation" and e.key == SUBJECT)
    first = await live.backups.backup_system()
    assert first.operation.instance == SUBJECT and first.operation.kind == "system-backup"
    await asyncio.wait_for(fake.started.wait(), 30)
    with pytest.raises(Conflict):
        await live.backups.backup_system()
    assert len(_ops(live)) == 1  # the refused one journaled nothing
    # the snapshot's database does not show this backup as still running
    assert fake.copied_state == ["succeeded"]
    fake.go.set()
    await asyncio.wait_for(live.runner.tasks[SUBJECT], 30)
    op = live.runner.journal.operation(first.operation.id)
    assert op.state == "succeeded", op.error
    assert [s.name for s in op.steps] == ["database", "snapshot", "check"]
    assert not live.backups.flows.stage(STAGE).exists()
    while not sub.queue.empty():
        events.append(sub.queue.get_nowait())
    progress = [e.data for e in events if e.kind == "progress"]
    assert any(p.get("bytes_done") == 100 and p.get("seconds_remaining") == 3 for p in progress)
    assert progress[-1]["snapshot"] == SYSTEM_ID
    live.bus.unsubscribe(sub)
    fake.go.clear()
    second = await live.backups.backup_system()  # serialised: allowed once the first ended
    fake.go.set()
    await asyncio.wait_for(live.runner.tasks[SUBJECT], 30)
    assert live.runner.journal.operation(second.operation.id).state == "succeeded"


async def test_a_crashed_system_backup_is_closed_and_cleaned_at_start(live: Services) -> None:
    fake = _held(live)
    op = live.runner.begin(SYSTEM_BACKUP, SUBJECT)
    live.runner.release(op)  # the process died here: the journal says running
    stage = live.backups.flows.stage(STAGE)
    stage.mkdir(parents=True)
    (stage / DB_COPY).write_bytes(b"half a copy")
    closed = live.runner.recover(lambda name: live.backups.records.find(name) is not None)
    await live.runner.resume(closed)
    found = live.runner.journal.operation(op.id)
    assert found.state == "interrupted" and "StackHub stopped" in (found.error or "")
    assert "stackhub backup system" in (found.error or "")
    assert not stage.exists()
    fake.go.set()
    again = await live.backups.backup_system()
    await asyncio.wait_for(live.runner.tasks[SUBJECT], 30)
    assert live.runner.journal.operation(again.operation.id).state == "succeeded"


async def test_two_first_uses_at_once_create_the_default_repository_once(
        live: Services) -> None:
    """The console's first look and a backup started at once: one `restic init`, not two."""

    class SlowInit(HeldRestic):
        inits = 0

        async def init(self, repo: Repository) -> None:
            SlowInit.inits += 1
            await asyncio.sleep(0.05)
            (Path(repo.url) / "config").parent.mkdir(parents=True, exist_ok=True)
            (Path(repo.url) / "config").write_text("made")

    fake = SlowInit()
    live.backups.restic = fake
    handle = live.backups.repos.handle(None)
    assert not (Path(handle.url) / "config").exists()
    await asyncio.gather(live.backups.ready(handle), live.backups.ready(handle))
    assert SlowInit.inits == 1
