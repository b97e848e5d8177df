"""Serve the backup domain: repositories, backups and restores of instances."""

from __future__ import annotations

import json
from dataclasses import replace

from stackhub.adapters.restic import Repository, Restic, Snapshot
from stackhub.apps.models import Accepted, InstanceStatus
from stackhub.backup.flows import (
    BACKUP,
    DEFINITION,
    RESTORE,
    BackupFlows,
    RestorePlan,
    check_paths,
    record_of,
)
from stackhub.backup.models import (
    BackupRequest,
    CheckRead,
    RepositoryCreate,
    RepositoryKey,
    RepositoryRead,
    RestoreRequest,
    SnapshotRead,
    SshKeyRead,
)
from stackhub.backup.repos import Repositories
from stackhub.errors import Conflict, Invalid, NotFound, RepositoryError, StackHubError
from stackhub.operations.runner import Runner
from stackhub.state.instances import Records

BUSY = {InstanceStatus.INSTALLING, InstanceStatus.REMOVING}


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
                 flows: BackupFlows, restic: Restic) -> None:
        """Keep the collaborators."""
        self.repos = repos
        self.records = records
        self.runner = runner
        self.flows = flows
        self.restic = restic

    # -- repositories -------------------------------------------------------------------------
    async def ready(self, repo: Repository) -> Repository:
        """Create the default local repository on first use; return the handle."""
        if repo.url.startswith("/") and repo.name == "local":
            root = self.repos.local_root
            if not (root / "config").is_file():
                root.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                await self.restic.init(repo)
        return repo

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
        return read

    async def check(self, name: str) -> CheckRead:
        """Run `restic check` on a repository."""
        repo = await self.ready(self.repos.handle(name))
        try:
            output = await self.restic.check(repo)
        except RepositoryError as err:
            if err.details.get("reason") in ("wrong_password", "unreachable"):
                raise
            return CheckRead(name=name, ok=False, output=err.message)
        return CheckRead(name=name, ok=True, output=output.strip()[-4000:])

    def remove_repository(self, name: str) -> None:
        """Forget a repository (its snapshots stay where they are)."""
        self.repos.forget(name)

    def ssh_key(self) -> SshKeyRead:
        """Return StackHub's SSH public key for SFTP repositories."""
        return SshKeyRead(public_key=self.repos.ssh_key())

    def key(self, name: str) -> RepositoryKey:
        """Return the recovery kit of a repository."""
        read = self.repos.get(name)
        return RepositoryKey(name=read.name, url=read.url, password=self.repos.password(name))

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

    # -- operations ---------------------------------------------------------------------------
    def _claimable(self, name: str) -> None:
        record = self.records.find(name)
        if record is not None and (record.status in BUSY or self.runner.busy(name)):
            raise Conflict(f"instance {name!r} is busy; wait for its operation to finish")

    async def create(self, name: str, request: BackupRequest) -> Accepted:
        """Start backing up an instance; follow the operation for progress."""
        record = self.records.get(name)
        self._claimable(name)
        self.runner.check_engine(BACKUP)
        repo = await self.ready(self.repos.handle(request.repository))
        op = self.runner.begin(BACKUP, name)
        self.runner.start(op, lambda run: self.flows.backup(run, repo))
        return Accepted(operation=op, instance=name, app=record.app_ref, version=record.version)

    async def restore(self, name: str, snapshot: str, request: RestoreRequest) -> Accepted:
        """Check a snapshot (paths, app, free space), then start restoring it."""
        self._claimable(name)
        self.runner.check_engine(RESTORE)
        repo = await self.ready(self.repos.handle(request.repository))
        snap = await self._snapshot(repo, name, snapshot)
        size = check_paths(await self.restic.ls(repo, snap.id), name)
        self.flows.space_check(size)
        raw = await self.restic.dump(repo, snap.id, f"/backups/stage/{name}/{DEFINITION}")
        try:
            definition = json.loads(raw)
        except ValueError as err:
            raise Invalid(f"the snapshot's definition is not JSON ({err})") from err
        if not isinstance(definition, dict):
            raise Invalid("the snapshot's definition is not a JSON object")
        record = record_of(definition, name)
        existing = self.records.find(name)
        if existing is not None and existing.app_ref != record.app_ref:
            raise Conflict(f"snapshot {snap.short_id} is a backup of {record.app_ref}, but "
                           f"{name!r} is {existing.app_ref}; remove the instance first or "
                           "restore it under another name")
        plan = RestorePlan(repo=repo, snapshot=snap, source=name, definition=definition,
                           record=record, existed=existing is not None, size=size)
        self._claimable(name)
        fresh = replace(record, status=InstanceStatus.INSTALLING.value, error=None)
        op = self.runner.begin(RESTORE, name, create=None if existing is not None else (
            lambda conn: self.records.insert(conn, fresh)))
        self.runner.start(op, lambda run: self.flows.restore(run, plan),
                          undo=self.flows.undo_restore(plan))
        return Accepted(operation=op, instance=name, app=record.app_ref, version=record.version)
