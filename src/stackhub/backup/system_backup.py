"""`backup system` as an operation on the runner: journaled, one at a time, crash-safe.

The operation's subject is `@system` (no instance can be named so; the gateway's own jobs use
`@gateway`), so a second system backup while one runs is refused (409) by the runner's claim.
Steps: `database` (SQLite's online backup API into `backups/stage/_system/`), `snapshot`
(restic, with percent, bytes and ETA events), `check` (restic lists the snapshot). A crash
leaves the operation `interrupted` (closed by the runner at start) and the staged database
copy, which the after-crash hook deletes; restic's stale lock is cleared by the next run.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from stackhub import faults, fsutil
from stackhub.adapters.restic import BackupProgress, Repository, Restic
from stackhub.apps.models import OperationRead
from stackhub.backup.flows import HOST, BackupFlows, tree_size
from stackhub.backup.models import SystemBackupAccepted
from stackhub.backup.system import DB_COPY, STAGE, SYSTEM_TAGS, copy_database, system_paths
from stackhub.errors import RepositoryError, StackHubError
from stackhub.operations.runner import OperationKind, Outcome, Run, Runner, register

SYSTEM_BACKUP = register(OperationKind("system-backup", "the system backup", None, None, None,
                                       hint="run `stackhub backup system` again",
                                       engine=False))
SUBJECT = "@system"
"""The operation's subject in the journal: StackHub itself (no app can be named so)."""

Ready = Callable[[Repository], Awaitable[Repository]]
Alert = Callable[[str, str, bool, dict[str, Any]], None]


def settle_copy(copy: Path, op_id: str) -> None:
    """Mark this operation succeeded in the staged database copy (it is still running in the
    live one), so a box restored from the snapshot does not list it as interrupted."""
    with contextlib.closing(sqlite3.connect(copy)) as conn, conn:
        conn.execute("UPDATE operations SET state = 'succeeded', progress = 100, step = "
                     "'snapshot', finished_at = started_at WHERE id = ?", (op_id,))


class SystemBackups:
    """Start system backups on the runner and clean up after a crashed one."""

    def __init__(self, *, runner: Runner, flows: BackupFlows, restic: Restic, ready: Ready,
                 handle: Callable[[str | None], Repository], alert: Alert) -> None:
        """Keep the collaborators; register the after-crash clean-up."""
        self.runner = runner
        self.flows = flows
        self.restic = restic
        self.ready = ready
        self.handle = handle
        self.alert = alert
        runner.after_crash(SYSTEM_BACKUP.name, self.after_crash)

    async def start(self, repository: str | None, *,
                    scheduled: bool = False) -> SystemBackupAccepted:
        """Journal a system backup and run it in the background (409 while one runs);
        a scheduled one is tagged `trigger=scheduled` (only those are ever pruned)."""
        self.runner.claim(SUBJECT)
        repo = await self.ready(self.handle(repository))
        op = self.runner.begin(SYSTEM_BACKUP, SUBJECT)
        extra = ["trigger=scheduled"] if scheduled else []
        self.runner.start(op, lambda run: self.backup(run, repo, extra))
        return SystemBackupAccepted(operation=op, repository=repo.name)

    async def backup(self, run: Run, repo: Repository, extra: list[str] | None = None) -> Outcome:
        """Copy the database, snapshot StackHub's own state, check restic lists it."""
        paths = self.flows.paths
        stage = self.flows.stage(STAGE)
        try:
            run.step("database", 5.0)
            self.flows.fresh(stage)
            copy_database(paths.db, stage / DB_COPY)
            settle_copy(stage / DB_COPY, run.op.id)
            await faults.checkpoint("system-backup-staged")
            names = system_paths(paths)
            size = sum(tree_size(paths.root / p) if (paths.root / p).is_dir() else
                       (paths.root / p).stat().st_size for p in names)
            run.step("snapshot", 10.0)
            summary = await self.restic.backup(
                repo, names, cwd=paths.root, host=HOST, report=_reporter(run),
                tags=[*SYSTEM_TAGS, "kind=system", "app=stackhub", f"size={size}",
                      *(extra or [])])
        except StackHubError as err:
            self.alert("backup.system", "stackhub", False, {"error": err.message})
            raise
        finally:
            with contextlib.suppress(StackHubError, OSError):
                fsutil.remove_tree_inside(stage, stage.parent)
        run.step("check", 95.0)
        found = await self.restic.snapshots(repo, tags=SYSTEM_TAGS)
        snap = next((s for s in found if s.id.startswith(summary.snapshot_id)), None)
        if snap is None:
            raise RepositoryError("restic wrote the system snapshot but does not list it")
        run.emit("progress", step="check", progress=99.0, percent=100.0, snapshot=snap.id,
                 repository=repo.name)
        self.alert("backup.system", "stackhub", True, {"snapshot": snap.id,
                                                       "operation": run.op.id,
                                                       "repository": repo.name})
        return None

    async def after_crash(self, op: OperationRead) -> None:
        """Delete the staged database copy a killed system backup left."""
        stage = self.flows.stage(STAGE)
        with contextlib.suppress(StackHubError, OSError):
            fsutil.remove_tree_inside(stage, stage.parent)


def _reporter(run: Run) -> Callable[[BackupProgress], None]:
    """Turn restic's status lines into `progress` events (10-95 %), at most 4 a second."""
    last = [0.0]

    def report(p: BackupProgress) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.25 or p.percent >= 100.0:
            last[0] = now
            run.emit("progress", step="snapshot", progress=10.0 + 0.85 * p.percent,
                     percent=p.percent, bytes_done=p.bytes_done, bytes_total=p.total_bytes,
                     files_done=p.files_done, files_total=p.total_files,
                     seconds_remaining=p.seconds_remaining)

    return report
