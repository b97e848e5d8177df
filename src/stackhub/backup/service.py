"""Serve the backup domain: repositories, backups and restores of instances."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from stackhub import fsutil
from stackhub.adapters.compose import COMPOSE_FILE, ENV_FILE
from stackhub.adapters.restic import Node, Repository, Restic, Snapshot
from stackhub.apps.models import Accepted, InstanceStatus, check_name
from stackhub.backup import kit
from stackhub.backup.flows import (
    BACKUP,
    DEFINITION,
    HOST,
    RESTORE,
    BackupFlows,
    CopyPlan,
    RestorePlan,
    check_paths,
    record_of,
    same_project,
)
from stackhub.backup.models import (
    BackupRequest,
    BackupStatusRead,
    CheckRead,
    DefaultScheduleRead,
    PruneRead,
    RepositoryCheckRead,
    RepositoryCreate,
    RepositoryKey,
    RepositoryRead,
    RestoreRequest,
    Retention,
    ScheduleRead,
    ScheduleRequest,
    SnapshotRead,
    SshKeyRead,
    SystemBackupAccepted,
    SystemScheduleRead,
)
from stackhub.backup.recovery import run_plan
from stackhub.backup.repos import Repositories
from stackhub.backup.schedules import (
    CHECK_EVERY,
    CHECK_RETRY,
    SYSTEM,
    Schedule,
    ScheduleStore,
    due,
    effective,
    health,
    iso,
    next_run,
    parse,
)
from stackhub.backup.system import SYSTEM_TAGS
from stackhub.backup.system_backup import SystemBackups
from stackhub.errors import (
    AlreadyExists,
    Conflict,
    Invalid,
    NotFound,
    RepositoryError,
    RiskNotAccepted,
    StackHubError,
)
from stackhub.operations.runner import Outcome, Run, Runner
from stackhub.state.instances import InstanceRecord, Records

log = logging.getLogger(__name__)
BUSY = {InstanceStatus.INSTALLING, InstanceStatus.REMOVING}
FILE_LIMIT = 4 << 20


def snapshot_read(snap: Snapshot, repository: str) -> SnapshotRead:
    """Return the API view of a StackHub snapshot."""
    size = snap.tag("size")
    return SnapshotRead(id=snap.id, short_id=snap.short_id or snap.id[:8],
                        instance=snap.tag("instance") or "", app=snap.tag("app") or "",
                        version=snap.tag("version") or "", kind=snap.tag("kind") or "manual",
                        time=snap.time, repository=repository,
                        size=int(size) if size and size.isdigit() else None)


class BackupService:
    """The backup domain's entry points, used by the API."""

    def __init__(self, *, repos: Repositories, records: Records, runner: Runner,
                 flows: BackupFlows, restic: Restic, tz: tzinfo | None = None,
                 clock: Callable[[], datetime] | None = None,
                 audit: Callable[[str, str, bool, dict[str, Any]], None] | None = None) -> None:
        """Keep the collaborators; `clock` (aware UTC now) and `tz` are injectable for tests.

        `audit(action, target, success, details)` records scheduled work in the audit log.
        """
        self.repos = repos
        self.records = records
        self.runner = runner
        self.flows = flows
        self.restic = restic
        self.store = ScheduleStore(repos.db)
        self._unlightened: set[str] = set()
        self._first_use = asyncio.Lock()
        self.tz: tzinfo = tz or UTC
        self.clock = clock or (lambda: datetime.now(UTC))
        self.audit = audit
        self.recovery_report: Callable[[str, str, str], None] = lambda *_: None
        """Raise the console notification of an instance restore-system did not bring back
        (instance, why, command); services.py wires it to the notifications."""
        self.system = SystemBackups(runner=runner, flows=flows, restic=restic, ready=self.ready,
                                    handle=repos.handle, alert=self._system_alert)

    # -- repositories -------------------------------------------------------------------------
    async def ready(self, repo: Repository) -> Repository:
        """Create the default local repository on first use; return the handle (with the
        light key named, added once to the default repository: its password is StackHub's)."""
        if repo.url.startswith("/") and repo.name == "local":
            root = Path(repo.url)  # after restore-system: the old box's path, maybe elsewhere
            async with self._first_use:  # two first requests at once: one init, not two
                if not (root / "config").is_file():
                    root.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                    await self.restic.init(repo)
                if repo.key_hint is None:
                    return await self._lighten(repo)
        return repo

    async def _lighten(self, repo: Repository) -> Repository:
        """Add the light key to a local repository whose password StackHub generated, so
        restic skips half a second of key stretching per run (`adapters/restic_key.py`);
        on any failure the repository is used as it is."""
        if not repo.url.startswith("/") or self.repos.has_light_key(repo.name) or \
                repo.url in self._unlightened:
            return repo
        try:
            key_id = await self.restic.add_light_key(repo)
            self.repos.keep_light_key(repo.name, key_id)
        except (StackHubError, OSError) as err:
            self._unlightened.add(repo.url)  # tried once per process
            log.warning("backup repository %s keeps restic's key stretching on every run: %s",
                        repo.name, err)
            return repo
        return self.repos.handle(repo.name)

    def repositories(self) -> list[RepositoryRead]:
        """Return every repository."""
        return self.repos.all()

    async def add_repository(self, request: RepositoryCreate) -> RepositoryRead:
        """Record a repository, then create it (no password given) or open it (one given)."""
        read = self.repos.add(request)
        repo = self.repos.handle(read.name)
        try:
            if request.password:
                await self.restic.open(repo)
            else:
                await self.restic.init(repo)
        except StackHubError:
            self.repos.forget(read.name)
            raise
        if not request.password:  # a password StackHub generated: the light key is safe
            await self._lighten(repo)
        return read

    async def check(self, name: str, *, subset: str | None = None) -> CheckRead:
        """Run `restic check` on a repository (reading `subset` of its data, e.g. `5%`)."""
        repo = await self.ready(self.repos.handle(name))
        try:
            output = await self.restic.check(repo, read_data_subset=subset)
        except RepositoryError as err:
            if err.details.get("reason") in ("wrong_password", "unreachable", "credentials"):
                raise
            packs = [str(p) for p in err.details.get("packs") or []]
            damaged = await self._damaged(repo, packs)
            text = str(err.details.get("output") or "").strip()[-4000:] or err.message
            if damaged:
                text += ("\nSnapshots with data in damaged packs (not restorable whole): " +
                         ", ".join(f"{s.short_id} ({s.instance or 'stackhub'}, {s.time[:19]})"
                                   for s in damaged))
            return CheckRead(name=name, ok=False, output=text, damaged_packs=packs,
                             damaged_snapshots=damaged)
        return CheckRead(name=name, ok=True, output=output.strip()[-4000:])

    async def _damaged(self, repo: Repository, packs: list[str]) -> list[SnapshotRead]:
        """Return the snapshots holding blobs of damaged packs (empty if that cannot be told)."""
        if not packs:
            return []
        try:
            ids = set(await self.restic.find_packs(repo, packs))
            found = await self.restic.snapshots(repo)
        except StackHubError as err:
            log.warning("cannot tell which snapshots damaged packs affect: %s", err)
            return []
        return [snapshot_read(s, repo.name) for s in reversed(found) if s.id in ids]

    def remove_repository(self, name: str) -> None:
        """Forget a repository (its snapshots stay where they are); not the default, nor one
        a schedule names (an instance's, the default schedule or the system backup's)."""
        self.repos.get(name)
        naming = [f"{s.instance}'s" for s in self.store.all() if s.request.repository == name]
        default, system = self.store.default(), self.store.system()
        if default is not None and default.request.repository == name:
            naming.append("the default")
        if system is not None and system.request.repository == name:
            naming.append("the system backup's")
        if naming:
            raise Invalid(f"{name!r} is named by backup schedules and cannot be removed: "
                          f"{', '.join(naming)} schedule; give them another repository "
                          "(stackhub backup schedule ... --repo OTHER) or remove them first")
        self.repos.forget(name)

    def make_default(self, name: str) -> RepositoryRead:
        """Make a repository the default for backups and schedules that name none."""
        return self.repos.make_default(name)

    def ssh_key(self) -> SshKeyRead:
        """Return StackHub's SSH public key for SFTP repositories."""
        return SshKeyRead(public_key=self.repos.ssh_key())

    def key(self, name: str) -> RepositoryKey:
        """Return the recovery kit of a repository."""
        read = self.repos.get(name)
        env = self.repos.handle(name).env
        ssh = self.repos.ssh_folder / "id_ed25519"
        found = kit.Kit(name=read.name, url=read.url, password=self.repos.password(name),
                        access_key_id=env.get("AWS_ACCESS_KEY_ID"),
                        secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
                        ssh_private_key=ssh.read_text() if read.url.startswith("sftp:") and
                        ssh.is_file() else None)
        key = RepositoryKey(name=found.name, url=found.url, password=found.password,
                            access_key_id=found.access_key_id,
                            secret_access_key=found.secret_access_key,
                            ssh_private_key=found.ssh_private_key)
        key.kit = kit.render(found, key.warning)
        return key

    # -- snapshots ----------------------------------------------------------------------------
    async def snapshots(self, *, instance: str | None = None,
                        repository: str | None = None) -> list[SnapshotRead]:
        """List StackHub's snapshots in one repository (default: the default), newest first."""
        repo = await self.ready(self.repos.handle(repository))
        tags = ["stackhub"] + ([f"instance={instance}"] if instance else [])
        found = await self.restic.snapshots(repo, tags=tags)
        return [snapshot_read(s, repo.name) for s in reversed(found)]

    async def _snapshot(self, repo: Repository, name: str, ref: str) -> Snapshot:
        found = await self.restic.snapshots(repo, tags=["stackhub", f"instance={name}"])
        if not found:
            raise NotFound(f"no backup of {name!r} in repository {repo.name!r}")
        if ref == "latest":
            return max(found, key=lambda s: s.time)
        ref = ref.lower()
        if len(ref) < 8 or any(c not in "0123456789abcdef" for c in ref):
            raise Invalid("give a snapshot id (at least its first 8 hex digits) or 'latest'")
        matches = [s for s in found if s.id.startswith(ref)]
        if not matches:
            others = await self.restic.snapshots(repo, tags=["stackhub"])
            if any(s.id.startswith(ref) for s in others):
                raise Invalid(f"snapshot {ref} is a backup of another instance, not of {name!r}")
            raise NotFound(f"no snapshot {ref} of {name!r} in repository {repo.name!r}")
        if len(matches) > 1:
            raise Invalid(f"{ref} matches several snapshots; give more digits")
        return matches[0]

    async def _listed(self, repo: Repository, name: str, ref: str) -> tuple[Snapshot, list[Node]]:
        """Find snapshot `ref` of `name` and list its nodes, with one restic run when the
        listing names a snapshot of `name` (else as `_snapshot` does, for its messages)."""
        ref = ref.lower()
        if ref == "latest" or (len(ref) >= 8 and all(c in "0123456789abcdef" for c in ref)):
            with contextlib.suppress(StackHubError):  # the slow path says what went wrong
                tags = ["stackhub", f"instance={name}"]
                snap, nodes = await self.restic.listing(
                    repo, ref, tags=tags if ref == "latest" else None)
                if snap is not None and set(tags) <= set(snap.tags) and \
                        (ref == "latest" or snap.id.startswith(ref)):
                    return snap, nodes
        snap = await self._snapshot(repo, name, ref)
        return snap, await self.restic.ls(repo, snap.id)

    # -- operations ---------------------------------------------------------------------------
    def _claimable(self, name: str) -> None:
        record = self.records.find(name)
        if record is not None and (record.status in BUSY or self.runner.busy(name)):
            raise Conflict(f"instance {name!r} is busy; wait for its operation to finish")

    async def create(self, name: str, request: BackupRequest, *,
                     kind: str = "manual") -> Accepted:
        """Start backing up an instance; follow the operation for progress.

        Stable entry point (also for pre-update snapshots, `kind="pre-update"`): the snapshot
        is tagged with `kind`; the outcome is recorded as the instance's last good or failed
        backup (`status`).
        """
        accepted, _task = await self.start_backup(name, request, kind=kind)
        return accepted

    async def start_backup(self, name: str, request: BackupRequest, *,
                           kind: str = "manual") -> tuple[Accepted, asyncio.Task[None]]:
        """Start a backup like `create`; also return the task, to await its end."""
        record = self.records.get(name)
        self._claimable(name)
        self.runner.check_engine(BACKUP)
        repo = await self.ready(self.repos.handle(request.repository))
        op = self.runner.begin(BACKUP, name)
        task = self.runner.start(op, lambda run: self._backup(run, repo, kind))
        return (Accepted(operation=op, instance=name, app=record.app_ref,
                         version=record.version), task)

    async def _backup(self, run: Run, repo: Repository, kind: str) -> Outcome:
        name = run.op.instance
        try:
            outcome = await self.flows.backup(run, repo, kind=kind, done=lambda snapshot: (
                self.store.succeeded(name, snapshot, repo.name, self.clock())))
        except StackHubError as err:
            self.store.failed(name, err.message, self.clock())
            raise
        return outcome

    # -- StackHub itself --------------------------------------------------------------------------
    async def backup_system(self, repository: str | None = None) -> SystemBackupAccepted:
        """Start snapshotting StackHub's own state (database, secrets, install id, projects,
        stores; not the apps' data) as an operation on `@system`; 409 while one runs.

        `backup/system.py` has `restore_system`, which brings it back on a fresh data root.
        """
        return await self.system.start(repository)

    async def recover_instances(self) -> list[str]:
        """Restore, one at a time, the instances `restore-system` left for this start (each
        from its latest snapshot in the repository the system came from); return them."""
        async def settle(name: str) -> None:
            task = self.runner.tasks.get(name)
            if task is not None:
                await asyncio.gather(asyncio.shield(task), return_exceptions=True)

        def outcome(op_id: str) -> tuple[str, str | None] | None:
            try:
                op = self.runner.journal.operation(op_id)
            except NotFound:
                return None
            return op.state.value, op.error

        return await run_plan(self.flows.paths.root, self.restore, settle, self._alert,
                              outcome=outcome, report=self.recovery_report)

    # -- schedules, retention, status -----------------------------------------------------------
    def schedule(self, name: str) -> ScheduleRead:
        """Return an instance's backup schedule (NotFound if it has none)."""
        self.records.get(name)
        found = self.store.find(name)
        if found is None:
            raise NotFound(f"instance {name!r} has no backup schedule")
        return self.store.read(found, self.store.last(name), self.tz)

    def schedules(self) -> list[ScheduleRead]:
        """Return the schedule that applies to each instance (its own, or the default)."""
        lasts = self.store.lasts()
        return [self.store.read(s, lasts.get(s.instance), self.tz)
                for s in self.applying().values()]

    def applying(self) -> dict[str, Schedule]:
        """Return the schedule that applies to each instance that has one, by name."""
        return self.store.applying({r.name: parse(r.created_at) for r in self.records.all()})

    def _applies_to(self, name: str) -> Schedule | None:
        """Return the schedule that applies to one instance (its own, or the default)."""
        record = self.records.find(name)
        return effective(name, self.store.find(name), self.store.default(),
                         parse(record.created_at) if record else None)

    def default_schedule(self) -> DefaultScheduleRead:
        """Return the default schedule (NotFound if there is none)."""
        found = self.store.default()
        if found is None:
            raise NotFound("there is no default backup schedule")
        lasts = self.store.lasts()
        following = [self.store.read(s, lasts.get(n), self.tz)
                     for n, s in sorted(self.applying().items()) if s.source == "default"]
        upcoming = [r.next_run_at for r in following if r.next_run_at]
        return DefaultScheduleRead(
            **found.request.model_dump(), instances=[r.instance for r in following],
            next_run_at=min(upcoming) if upcoming else None,
            created_at=iso(found.created_at), updated_at=iso(found.updated_at))

    def set_default_schedule(self, request: ScheduleRequest) -> DefaultScheduleRead:
        """Create or replace the default schedule (the repository must exist)."""
        if request.repository is not None:
            self.repos.get(request.repository)
        self.store.put_default(request, self.clock())
        return self.default_schedule()

    def remove_default_schedule(self) -> None:
        """Remove the default schedule (instances with their own keep theirs)."""
        if not self.store.remove_default():
            raise NotFound("there is no default backup schedule")

    def set_schedule(self, name: str, request: ScheduleRequest) -> ScheduleRead:
        """Create or replace an instance's schedule and retention (the repository must exist)."""
        self.records.get(name)
        self.repos.get(request.repository)
        self.store.put(name, request, self.clock())
        return self.schedule(name)

    def remove_schedule(self, name: str) -> None:
        """Remove an instance's schedule (its backups stay)."""
        self.records.get(name)
        if not self.store.remove(name):
            raise NotFound(f"instance {name!r} has no backup schedule")

    def status(self, name: str | None = None) -> list[BackupStatusRead]:
        """Return how each instance's backups stand (one instance with `name`)."""
        names = [self.records.get(name).name] if name else [r.name for r in self.records.all()]
        now, lasts = self.clock(), self.store.lasts()
        schedules = self.applying()
        return [health(n, schedules.get(n), lasts.get(n), now, self.tz) for n in names]

    async def prune(self, name: str, retention: Retention, *, repository: str | None = None,
                    dry_run: bool = False) -> PruneRead:
        """Apply a retention to one instance's scheduled backups (dry run first, always).

        restic is asked what the policy keeps and removes without changing anything; then
        exactly those snapshots are forgotten by id, after checking each one is a scheduled
        backup of this instance and that something is kept. Manual and pre-update backups
        and other instances' backups are never touched.
        """
        repo = await self.ready(self.repos.handle(repository))
        tags = ["stackhub", f"instance={name}", "kind=scheduled"]
        plan = await self.restic.forget_plan(repo, tags=tags, host=HOST, keep=retention.flags())
        for snap in plan.remove:
            if snap.tag("instance") != name or snap.tag("kind") != "scheduled" or \
                    "stackhub" not in snap.tags:
                raise Conflict(f"retention would remove snapshot {snap.short_id}, which is not "
                               f"a scheduled backup of {name!r}; nothing was removed")
        if plan.remove and not plan.keep:
            raise Conflict(f"retention would remove every scheduled backup of {name!r}; "
                           "nothing was removed")
        removed = [s.id for s in plan.remove]
        if removed and not dry_run:
            await self.restic.forget(repo, removed)
        return PruneRead(instance=name, repository=repo.name, dry_run=dry_run,
                         kept=[s.id for s in plan.keep], removed=removed)

    def _alert(self, action: str, target: str, success: bool, details: dict[str, Any]) -> None:
        if self.audit is not None:
            self.audit(action, target, success, details)

    async def run_scheduled(self, name: str) -> bool:
        """Run an instance's scheduled backup to its end, then its retention; say if it worked.

        The schedule is the instance's own or the default (its retention applied to this
        instance's scheduled backups only). Failures (the instance busy, the engine or
        repository unreachable, a failed backup or prune) are recorded as the instance's
        failed backup and in the audit log.
        """
        schedule = self._applies_to(name)
        if schedule is None:
            return False
        now = self.clock()
        self.store.scheduled(name, now)
        request = schedule.request
        try:
            accepted, task = await self.start_backup(
                name, BackupRequest(repository=request.repository), kind="scheduled")
            await task
            op = self.runner.journal.operation(accepted.operation.id)
            if op.state != "succeeded":
                raise StackHubError(op.error or f"the backup ended {op.state}")
            pruned = await self.prune(name, request, repository=request.repository)
        except StackHubError as err:
            last = self.store.last(name)
            if last is None or last.last_failure_at is None or last.last_failure_at < now:
                self.store.failed(name, err.message, self.clock())
            self._alert("backup.scheduled", name, False, {"error": err.message})
            return False
        self._alert("backup.scheduled", name, True, {"removed": len(pruned.removed),
                                                     "schedule": schedule.source})
        return True

    # -- the system backup's schedule, retention, status ---------------------------------------
    def _system_alert(self, action: str, target: str, success: bool,
                      details: dict[str, Any]) -> None:
        """Record a system backup's outcome (its health), then audit it."""
        now = self.clock()
        if success:
            self.store.system_succeeded(str(details.get("snapshot") or ""),
                                        str(details.get("repository") or ""), now)
        else:
            self.store.system_failed(str(details.get("error") or "the backup failed"), now)
        self._alert(action, target, success, details)

    def system_status(self) -> BackupStatusRead:
        """Return how the system backups stand (instance `@system`)."""
        return health(SYSTEM, self.store.system(), self.store.system_last(), self.clock(),
                      self.tz)

    def system_schedule(self) -> SystemScheduleRead:
        """Return the system backup's schedule (NotFound if there is none)."""
        found = self.store.system()
        if found is None:
            raise NotFound("the system backup has no schedule")
        last = self.store.system_last()
        since = max(t for t in (found.updated_at, last.last_scheduled_at if last else None)
                    if t is not None)
        next_at = next_run(found.request, since, self.tz) if found.request.enabled else None
        return SystemScheduleRead(**found.request.model_dump(),
                                  next_run_at=iso(next_at) if next_at else None,
                                  created_at=iso(found.created_at),
                                  updated_at=iso(found.updated_at), status=self.system_status())

    def set_system_schedule(self, request: ScheduleRequest) -> SystemScheduleRead:
        """Create or replace the system backup's schedule (the repository must exist)."""
        if request.repository is not None:
            self.repos.get(request.repository)
        self.store.put_system(request, self.clock())
        return self.system_schedule()

    def remove_system_schedule(self) -> None:
        """Remove the system backup's schedule (its snapshots stay)."""
        if not self.store.remove_system():
            raise NotFound("the system backup has no schedule")

    def system_due(self) -> bool:
        """Tell whether the scheduled system backup should start now."""
        found = self.store.system()
        return found is not None and due(found, self.store.system_last(), self.clock(),
                                         self.tz)

    async def prune_system(self, retention: Retention, *, repository: str | None = None,
                           dry_run: bool = False) -> PruneRead:
        """Apply a retention to the scheduled system snapshots only (dry run first, always):
        manual system backups and every instance's backups are never touched."""
        repo = await self.ready(self.repos.handle(repository))
        tags = [*SYSTEM_TAGS, "kind=system", "trigger=scheduled"]
        plan = await self.restic.forget_plan(repo, tags=tags, host=HOST, keep=retention.flags())
        for snap in plan.remove:
            if snap.tag("instance") is not None or not set(tags) <= set(snap.tags):
                raise Conflict(f"retention would remove snapshot {snap.short_id}, which is not "
                               "a scheduled system backup; nothing was removed")
        if plan.remove and not plan.keep:
            raise Conflict("retention would remove every scheduled system backup; nothing "
                           "was removed")
        removed = [s.id for s in plan.remove]
        if removed and not dry_run:
            await self.restic.forget(repo, removed)
        return PruneRead(instance=SYSTEM, repository=repo.name, dry_run=dry_run,
                         kept=[s.id for s in plan.keep], removed=removed)

    async def run_scheduled_system(self) -> bool:
        """Run the scheduled system backup to its end, then its retention; say if it worked
        (failures are recorded as the system's failed backup and in the audit log)."""
        schedule = self.store.system()
        if schedule is None:
            return False
        now = self.clock()
        self.store.system_scheduled(now)
        request = schedule.request
        try:
            accepted = await self.system.start(request.repository, scheduled=True)
            task = self.runner.tasks.get(SYSTEM)
            if task is not None:
                await asyncio.gather(asyncio.shield(task), return_exceptions=True)
            op = self.runner.journal.operation(accepted.operation.id)
            if op.state != "succeeded":
                raise StackHubError(op.error or f"the system backup ended {op.state}")
            pruned = await self.prune_system(request, repository=request.repository)
        except StackHubError as err:
            last = self.store.system_last()
            if last is None or last.last_failure_at is None or last.last_failure_at < now:
                self.store.system_failed(err.message, self.clock())
            self._alert("backup.system.scheduled", SYSTEM, False, {"error": err.message})
            return False
        self._alert("backup.system.scheduled", SYSTEM, True, {"removed": len(pruned.removed)})
        return True

    async def check_repository(self, name: str, *, subset: str | None = None) -> CheckRead:
        """Check a repository (a share of its data with `subset`, e.g. `5%`); record it."""
        result = await self.check(name, subset=subset)
        self.store.checked(name, result.ok, result.output, self.clock())
        if not result.ok:
            self._alert("backup.check", name, False, {
                "output": result.output[-500:],
                "damaged_snapshots": [s.id for s in result.damaged_snapshots]})
        return result

    def check_due(self, name: str) -> bool:
        """Tell whether a repository's periodic check is due (30 days after the last one)."""
        last = self.store.last_check(name)
        since = last[0] if last else parse(self.repos.get(name).created_at)
        wait = CHECK_EVERY if last is None or last[1] else CHECK_RETRY
        return since is None or self.clock() - since >= wait

    def checks(self) -> list[RepositoryCheckRead]:
        """Return the last check of each repository and when the next one is due."""
        found: list[RepositoryCheckRead] = []
        for repo in self.repos.all():
            last = self.store.last_check(repo.name)
            base = last[0] if last else parse(repo.created_at) or self.clock()
            found.append(RepositoryCheckRead(
                repository=repo.name, checked_at=iso(last[0]) if last else "",
                ok=last[1] if last else True, next_check_at=iso(
                    base + (CHECK_EVERY if last is None or last[1] else CHECK_RETRY)),
                error=self.store.check_error(repo.name) if last and not last[1] else None))
        return found

    async def _files(self, repo: Repository, snap: Snapshot, name: str,
                     nodes: list[Node]) -> dict[str, bytes]:
        """Read the snapshot's definition, compose file and `.env` with one restic run.

        Keys are the file names; a file the snapshot lacks is left out. Files above 4 MB
        (by the snapshot's own listing) are refused before anything is read.
        """
        wanted = {f"/backups/stage/{name}/{DEFINITION}": DEFINITION,
                  f"/instances/{name}/{COMPOSE_FILE}": COMPOSE_FILE,
                  f"/instances/{name}/{ENV_FILE}": ENV_FILE}
        present = [n for n in nodes if n.type == "file" and n.path in wanted]
        for node in present:
            if node.size > FILE_LIMIT:
                raise Invalid(f"{node.path} in the snapshot is larger than {FILE_LIMIT} bytes")
        if not present:
            return {}
        folder = self.flows.base / f"check-{uuid.uuid4().hex}"
        folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder.mkdir(mode=0o700)
        try:
            await self.restic.extract(repo, snap.id, [n.path for n in present], folder,
                                      lock=False)
            found: dict[str, bytes] = {}
            for node in present:
                path = folder / node.path.lstrip("/")
                if path.is_file() and not path.is_symlink() and \
                        path.stat().st_size <= FILE_LIMIT:
                    found[wanted[node.path]] = path.read_bytes()
            return found
        finally:
            with contextlib.suppress(StackHubError, OSError):
                fsutil.remove_tree_inside(folder, folder.parent)

    @staticmethod
    def _parse_definition(raw: bytes | None) -> dict[str, Any]:
        """Decode a snapshot's definition (Invalid when missing or unreadable)."""
        if raw is None:
            raise Invalid("the snapshot holds no instance definition; it is not a StackHub "
                          "backup of this instance")
        try:
            definition = json.loads(raw)
        except ValueError as err:
            raise Invalid(f"the snapshot's definition is not JSON ({err})") from err
        if not isinstance(definition, dict):
            raise Invalid("the snapshot's definition is not a JSON object")
        return definition

    async def _live_risks(self, name: str) -> set[tuple[str, str, str]]:
        """Return the risky options instance `name` has now (accepted when it was installed)."""
        record = self.records.find(name)
        folder = self.flows.paths.instance_dir(name)
        if record is None or not (folder / COMPOSE_FILE).is_file():
            return set()
        try:
            risks, _ = await self.flows.apps.analyse(name, folder, secret_values(record))
        except StackHubError:
            return set()  # unreadable now: every risk of the snapshot needs consent
        return {(r.code, r.service, r.detail) for r in risks}

    async def _snapshot_risks(self, snap: Snapshot, name: str, files: dict[str, bytes],
                              record: InstanceRecord) -> tuple[Any, str]:
        """Analyse the project files a snapshot would bring back, as instance `name`'s."""
        folder = self.flows.base / f"check-{uuid.uuid4().hex}"
        folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder.mkdir(mode=0o700)
        try:
            for file in (COMPOSE_FILE, ENV_FILE):
                if file in files:
                    fsutil.write_atomic(folder / file, files[file], mode=0o600)
            if not (folder / COMPOSE_FILE).is_file():
                raise Invalid(f"snapshot {snap.short_id} holds no {COMPOSE_FILE} of {name!r}")
            return await self.flows.apps.analyse(name, folder, secret_values(record))
        finally:
            with contextlib.suppress(StackHubError, OSError):
                fsutil.remove_tree_inside(folder, folder.parent)

    @staticmethod
    def _consent(risks: list[Any], baseline: set[tuple[str, str, str]], digest: str,
                 accepted: str | None, what: str) -> None:
        """Refuse (428) risky options the instance did not have, unless accepted by digest."""
        added = [r for r in risks if (r.code, r.service, r.detail) not in baseline]
        if added and accepted != digest:
            raise RiskNotAccepted(
                f"{what} has risky options the instance did not have when it was installed; "
                "an admin must accept them by digest (nothing was changed)",
                details={"digest": digest, "risks": [r.model_dump() for r in added]})

    async def restore(self, name: str, snapshot: str, request: RestoreRequest) -> Accepted:
        """Check a snapshot (paths, app, risks, free space), then start restoring it.

        With `request.as_name`, the snapshot becomes a new instance beside the original
        (`restore_as`). Risky options the snapshot's compose file has and the live instance
        has not (or any, when the instance is gone) need `request.accept_risks` (428 with the
        digest and the risks otherwise), as at install.
        """
        if request.as_name is not None:
            return await self.restore_as(name, check_name(request.as_name), snapshot, request)
        self._claimable(name)
        self.runner.check_engine(RESTORE)
        repo = await self.ready(self.repos.handle(request.repository))
        snap, nodes = await self._listed(repo, name, snapshot)
        size = check_paths(nodes, name)
        self.flows.space_check(size)
        files = await self._files(repo, snap, name, nodes)
        definition = self._parse_definition(files.get(DEFINITION))
        record = record_of(definition, name)
        existing = self.records.find(name)
        if existing is not None and existing.app_ref != record.app_ref:
            raise Conflict(f"snapshot {snap.short_id} is a backup of {record.app_ref}, "
                           f"but {name!r} is {existing.app_ref}; remove the instance first "
                           "or restore it under another name")
        if existing is not None and same_project(self.flows.paths.instance_dir(name), files):
            risks: list[Any] = []  # nothing it brings back is new: no analysis at all
            digest, live = "", set[tuple[str, str, str]]()
        else:  # both projects analysed side by side (a `compose config` each)
            ours = asyncio.ensure_future(self._live_risks(name))
            try:
                risks, digest = await self._snapshot_risks(snap, name, files, record)
                live = await ours
            finally:
                if not ours.done():
                    ours.cancel()
                    await asyncio.gather(ours, return_exceptions=True)
        self._consent(risks, live, digest, request.accept_risks, f"snapshot {snap.short_id}")
        plan = RestorePlan(repo=repo, snapshot=snap, source=name, definition=definition,
                           record=record, existed=existing is not None, size=size)
        self._claimable(name)
        fresh = replace(record, status=InstanceStatus.INSTALLING.value, error=None)
        op = self.runner.begin(RESTORE, name, create=None if existing is not None else (
            lambda conn: self.records.insert(conn, fresh)))
        self.runner.start(op, lambda run: self.flows.restore(run, plan),
                          undo=self.flows.undo_restore(plan))
        return Accepted(operation=op, instance=name, app=record.app_ref, version=record.version)

    async def restore_as(self, name: str, new: str, snapshot: str,
                         request: RestoreRequest) -> Accepted:
        """Restore a backup of `name` as a new instance `new` beside it.

        The app definition and values (secrets included) come from the snapshot; ports are
        picked anew and the project is planned again for the new name (its risks judged as at
        install, against the original's); data folders and volumes are copied from the
        snapshot. The operation is journaled on `name` with `new` as its target.
        """
        if new == name:
            raise Invalid("--as needs a name other than the backed-up instance's; to restore "
                          "it in place, leave --as out")
        if self.records.find(new) is not None:
            raise AlreadyExists(f"an instance named {new!r} already exists; choose another "
                                "name for the restored copy")
        paths = self.flows.paths
        for folder in (paths.instance_dir(new), paths.instance_data(new)):
            if folder.exists() or folder.is_symlink():
                raise AlreadyExists(f"{folder} exists (kept from an earlier instance named "
                                    f"{new!r}); choose another name or remove that folder")
        self._claimable(name)
        self.runner.check_engine(RESTORE)
        repo = await self.ready(self.repos.handle(request.repository))
        snap = await self._snapshot(repo, name, snapshot)
        nodes = await self.restic.ls(repo, snap.id)
        size = check_paths(nodes, name)
        self.flows.space_check(size)
        definition = self._parse_definition((await self._files(repo, snap, name, nodes)).get(
            DEFINITION))
        record = record_of(definition, name)
        volumes = self.flows.copied_volumes(definition, name, new)
        for _info, made in volumes:
            if await asyncio.to_thread(self.flows.volumes.exists, made.name):
                raise AlreadyExists(f"volume {made.name} already exists; choose another name "
                                    "for the restored copy")
        plan, fresh = await self.flows.apps.plan_copy(new, record.definition, record.parameters)
        try:
            self._consent(plan.risks, await self._live_risks(name), plan.digest,
                          request.accept_risks, f"snapshot {snap.short_id} (as {new})")
            self._claimable(name)

            def create(conn: sqlite3.Connection) -> None:
                self.records.insert(conn, fresh)
                self.flows.apps.keep_subnets(conn, plan)

            op = self.runner.begin(RESTORE, name, target=new, create=create)
        except BaseException:
            self.flows.apps.release_plan(plan)
            raise
        copy = CopyPlan(repo=repo, snapshot=snap, source=name, new=new, plan=plan,
                        volumes=volumes)
        self.runner.start(op, lambda run: self.flows.restore_as(run, copy),
                          undo=self.flows.undo_restore_as(copy))
        return Accepted(operation=op, instance=new, app=record.app_ref, version=record.version)


def secret_values(record: InstanceRecord) -> list[str]:
    """Return an instance's secret values (masked in risk digests)."""
    return [record.parameters[n] for n in record.secret_names if record.parameters.get(n)]
