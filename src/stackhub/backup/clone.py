"""Clone an instance: a fresh snapshot of it restored as a new instance, in one operation.

`clone` is journaled on the original with the copy as its `target` (both are claimed; the
copy's record is inserted with the operation, status installing). The copy is planned like an
install for the new name (values and secrets kept, ports picked anew, no custom domain: the
gateway's automatic `<new>.<base>` name follows from the name), then: the original is backed up
(stopped for the copy and started again, snapshot kind `clone`) and that snapshot is restored
as the new instance (backup/flows.py `restore_as`). A failure removes everything the copy got;
after a crash the after-crash hook starts the original again if the backup had stopped it and
removes the half-made copy, so running the clone again converges.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

from stackhub import labels
from stackhub.adapters.restic import Repository
from stackhub.apps.models import InstanceStatus, OperationRead, check_name
from stackhub.backup.flows import RUNNING_STATES, CopyPlan, check_paths, definition_of
from stackhub.backup.models import CloneAccepted, CloneRequest
from stackhub.backup.service import BackupService
from stackhub.errors import AlreadyExists, Conflict, Invalid, NotFound, StackHubError
from stackhub.operations.runner import OperationKind, Outcome, Run, register

CLONE = register(OperationKind("clone", "the clone", None, None, None,
                               hint="clone it again (the half-made copy was removed and the "
                               "original runs as before)"))
BUSY = {InstanceStatus.INSTALLING.value, InstanceStatus.REMOVING.value,
        InstanceStatus.FAILED.value, InstanceStatus.INTERRUPTED.value}


class ScaledRun(Run):
    """A run whose steps' progress is mapped into [low, high] (one half of a longer job)."""

    def __init__(self, run: Run, low: float, high: float) -> None:
        """Wrap `run`'s operation; progress p becomes low + (high - low) * p / 100."""
        super().__init__(run.runner, run.op)
        self.outages = run.outages
        self.low, self.high = low, high

    def _scale(self, progress: float) -> float:
        return round(self.low + (self.high - self.low) * progress / 100.0, 1)

    def step(self, name: str, progress: float, *, engine: bool = False) -> None:
        """Journal the step with its progress scaled."""
        super().step(name, self._scale(progress), engine=engine)

    def emit(self, kind: str, **data: object) -> None:
        """Publish the event with its progress scaled."""
        value = data.get("progress")
        if kind == "progress" and isinstance(value, int | float):
            data["progress"] = self._scale(float(value))
        super().emit(kind, **data)


class Cloner:
    """The clone entry point and its steps (the backup domain's flows do the work)."""

    def __init__(self, backups: BackupService) -> None:
        """Use the backup service's repositories, records, runner and flows."""
        self.backups = backups
        self.flows = backups.flows
        backups.runner.after_crash(CLONE.name, self.after_crash)

    async def clone(self, name: str, request: CloneRequest) -> CloneAccepted:
        """Check everything (nothing changes on a refusal), then start the clone operation."""
        new = check_name(request.name)
        records, runner, flows = self.backups.records, self.backups.runner, self.flows
        source = records.get(name)
        if new == name:
            raise Invalid("give the copy a name other than the original's")
        if records.find(new) is not None:
            raise AlreadyExists(f"an instance named {new!r} already exists; choose another "
                                "name for the copy (nothing was changed)")
        for folder in (flows.paths.instance_dir(new), flows.paths.instance_data(new)):
            if folder.exists() or folder.is_symlink():
                raise AlreadyExists(f"{folder} exists (kept from an earlier instance named "
                                    f"{new!r}); choose another name or remove that folder")
        if source.status in BUSY or runner.busy(name):
            raise Conflict(f"instance {name!r} is busy or not installed completely "
                           f"({source.status}); wait for its operation, or retry it, first")
        runner.check_engine(CLONE)
        repo = await self.backups.ready(self.backups.repos.handle(None))
        volumes = await asyncio.to_thread(flows.volumes.volumes_of, labels.project_name(name))
        pairs = flows.copied_volumes(definition_of(source, volumes), name, new)
        for _info, made in pairs:
            if await asyncio.to_thread(flows.volumes.exists, made.name):
                raise AlreadyExists(f"volume {made.name} already exists; choose another name "
                                    "for the copy")
        plan, fresh = await flows.apps.plan_copy(new, source.definition, source.parameters)
        try:
            self.backups._consent(plan.risks, await self.backups._live_risks(name), plan.digest,
                                  request.accept_risks, f"the copy {new}")
            if runner.busy(name):
                raise Conflict(f"instance {name!r} is busy; wait for its operation to finish")

            def create(conn: sqlite3.Connection) -> None:
                records.insert(conn, fresh)
                flows.apps.keep_subnets(conn, plan)

            op = runner.begin(CLONE, name, target=new, create=create)
        except BaseException:
            flows.apps.release_plan(plan)
            raise
        runner.start(op, lambda run: self._work(run, repo, plan, pairs),
                     undo=self._undo(new))
        return CloneAccepted(operation=op, instance=new, source=name, app=source.app_ref,
                             version=source.version, ports=plan.ports)

    async def _work(self, run: Run, repo: Repository, plan: Any,
                    pairs: list[Any]) -> Outcome:
        """Back the original up (stopped, started again), restore that as the copy."""
        name, new = run.op.instance, str(run.op.target)
        made: list[str] = []
        await self.flows.backup(ScaledRun(run, 0.0, 45.0), repo, kind="clone",
                                done=made.append)
        restic = self.backups.restic
        found = await restic.snapshots(repo, tags=["stackhub", f"instance={name}",
                                                   "kind=clone"])
        # restic 0.14's backup summary gives the short id
        snap = next((s for s in found if made and s.id.startswith(made[0])), None)
        if snap is None:
            raise NotFound(f"the snapshot of {name!r} taken for the clone is not in the "
                           "repository")
        check_paths(await restic.ls(repo, snap.id), name)
        copy = CopyPlan(repo=repo, snapshot=snap, source=name, new=new, plan=plan,
                        volumes=pairs)
        await self.flows.restore_as(ScaledRun(run, 45.0, 100.0), copy)
        return None

    def _undo(self, new: str) -> Any:
        """A failed clone: the copy's record goes (restore_as removed what it had made)."""
        def undo(_run: Run, _err: StackHubError) -> bool:
            self.backups.records.delete(new)
            return False  # the original stays

        return undo

    async def after_crash(self, op: OperationRead) -> None:
        """Remove the half-made copy; start the original if the backup had stopped it."""
        await self.flows.after_backup_crash(op)  # the staging folder and helper containers
        await self.flows.after_restore_crash(op)  # the copy: containers, volumes, folders, record
        # the journal keeps no prior status for an operation that inserted its target, so the
        # original's own recorded status says whether it ran
        record = self.backups.records.find(op.instance)
        if record is not None and record.status in RUNNING_STATES and \
                not await self.flows._running(op.instance):
            await self.flows._start(op.instance)
