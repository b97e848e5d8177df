"""HTTP routes of the backup domain (admin-only): repositories, snapshots, backup, restore."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from stackhub.api.deps import AuditDep, ServicesDep
from stackhub.apps.models import Accepted, check_name
from stackhub.backup.models import (
    REPO_NAME,
    BackupRequest,
    BackupStatusRead,
    CheckRead,
    DefaultScheduleRead,
    PruneRead,
    PruneRequest,
    RepositoryCheckRead,
    RepositoryCreate,
    RepositoryKey,
    RepositoryRead,
    RestoreRequest,
    ScheduleRead,
    ScheduleRequest,
    SnapshotRead,
    SshKeyRead,
    SystemBackupAccepted,
    SystemScheduleRead,
)

router = APIRouter(prefix="/backups", tags=["backups"])
RepoPath = Annotated[str, Path(pattern=REPO_NAME, description="Repository name")]
SnapshotPath = Annotated[str, Path(pattern=r"^(latest|[0-9a-f]{8,64})$",
                                   description="Snapshot id (8 to 64 hex digits) or `latest`")]


@router.get("/repositories", response_model=list[RepositoryRead], summary="List repositories")
async def list_repositories(services: ServicesDep) -> list[RepositoryRead]:
    """Return every backup repository, the default first (passwords are never shown here)."""
    return services.backups.repositories()


@router.post("/repositories", response_model=RepositoryRead, status_code=201,
             summary="Add a repository")
async def add_repository(request: RepositoryCreate, services: ServicesDep,
                         audit: AuditDep) -> RepositoryRead:
    """Create a new encrypted repository at the URL (or connect one, given its password)."""
    read = await services.backups.add_repository(request)
    audit("backup.repository.add", read.name, url=read.url)
    return read


@router.delete("/repositories/{repo}", status_code=204, summary="Forget a repository")
async def remove_repository(repo: RepoPath, services: ServicesDep, audit: AuditDep) -> Response:
    """Forget a repository and its password; its snapshots stay where they are."""
    services.backups.remove_repository(repo)
    audit("backup.repository.remove", repo)
    return Response(status_code=204)


@router.post("/repositories/{repo}/default", response_model=RepositoryRead,
             summary="Make a repository the default")
async def default_repository(repo: RepoPath, services: ServicesDep,
                             audit: AuditDep) -> RepositoryRead:
    """Make the repository the default: backups without a repository, and schedules (own or
    default) without one, go there from now on; snapshots already taken stay where they are."""
    read = services.backups.make_default(repo)
    audit("backup.repository.default", repo)
    return read


@router.post("/repositories/{repo}/check", response_model=CheckRead,
             summary="Check a repository")
async def check_repository(
        repo: RepoPath, services: ServicesDep,
        subset: Annotated[str | None, Query(pattern=r"^([1-9][0-9]?|100)%$",
                                            description="Also read this share of the data, "
                                            "e.g. `5%`")] = None) -> CheckRead:
    """Run `restic check` (structure and index) and return its verdict and output (recorded)."""
    return await services.backups.check_repository(repo, subset=subset)


@router.post("/system", response_model=SystemBackupAccepted, status_code=202,
             summary="Back up StackHub itself")
async def backup_system(services: ServicesDep, audit: AuditDep,
                        request: BackupRequest | None = None) -> SystemBackupAccepted:
    """Start snapshotting StackHub's own state (database, secrets, install id, projects,
    stores; not the apps' data) as an operation on `@system`: follow it for progress; 409
    while another system backup runs. `stackhub restore-system` brings it back on a fresh
    data root."""
    accepted = await services.backups.backup_system((request or BackupRequest()).repository)
    audit("backup.system", "stackhub", operation=accepted.operation.id)
    return accepted


@router.get("/checks", response_model=list[RepositoryCheckRead],
            summary="Last check of each repository")
async def list_checks(services: ServicesDep) -> list[RepositoryCheckRead]:
    """Return each repository's last check (periodic: every 30 days, 5% of the data)."""
    return services.backups.checks()


@router.get("/status", response_model=list[BackupStatusRead], summary="Backup health")
async def backup_status(
        services: ServicesDep,
        instance: Annotated[str | None, Query(max_length=40, pattern=r"^[a-z0-9][a-z0-9-]*$",
                                              description="Only this instance")] = None,
) -> list[BackupStatusRead]:
    """Return each instance's last good and failed backup; `alert` when failed or overdue."""
    return services.backups.status(instance)


@router.get("/schedules", response_model=list[ScheduleRead], summary="List schedules")
async def list_schedules(services: ServicesDep) -> list[ScheduleRead]:
    """Return the schedule and retention that apply to each instance: its own, or the default
    (`source`); instances without either are left out."""
    return services.backups.schedules()


@router.get("/schedules/default", response_model=DefaultScheduleRead,
            summary="Show the default schedule")
async def get_default_schedule(services: ServicesDep) -> DefaultScheduleRead:
    """Return the default schedule and the instances it applies to (404 if there is none)."""
    return services.backups.default_schedule()


@router.put("/schedules/default", response_model=DefaultScheduleRead,
            summary="Set the default schedule")
async def put_default_schedule(request: ScheduleRequest, services: ServicesDep,
                               audit: AuditDep) -> DefaultScheduleRead:
    """Create or replace the default schedule and retention: it applies to every instance
    without its own schedule, now and installed later (a paused own schedule opts one out);
    its retention prunes each instance's scheduled backups on their own."""
    read = services.backups.set_default_schedule(request)
    audit("backup.schedule.default.set", "default", every=read.every.value, at=read.at)
    return read


@router.delete("/schedules/default", status_code=204, summary="Remove the default schedule")
async def delete_default_schedule(services: ServicesDep, audit: AuditDep) -> Response:
    """Stop backing up instances without their own schedule (their backups stay)."""
    services.backups.remove_default_schedule()
    audit("backup.schedule.default.remove", "default")
    return Response(status_code=204)


@router.get("/schedules/system", response_model=SystemScheduleRead,
            summary="Show the system backup's schedule")
async def get_system_schedule(services: ServicesDep) -> SystemScheduleRead:
    """Return the system backup's schedule, retention and health (404 if there is none)."""
    return services.backups.system_schedule()


@router.put("/schedules/system", response_model=SystemScheduleRead,
            summary="Set the system backup's schedule")
async def put_system_schedule(request: ScheduleRequest, services: ServicesDep,
                              audit: AuditDep) -> SystemScheduleRead:
    """Create or replace the schedule of `backup system` (run by the same scheduler as the
    instances'); its retention prunes scheduled system snapshots only, never manual ones or
    any instance's; 24 h after a due run without a good backup, a notification."""
    read = services.backups.set_system_schedule(request)
    audit("backup.schedule.system.set", "@system", every=read.every.value, at=read.at)
    return read


@router.delete("/schedules/system", status_code=204,
               summary="Remove the system backup's schedule")
async def delete_system_schedule(services: ServicesDep, audit: AuditDep) -> Response:
    """Stop the scheduled system backups (the snapshots stay)."""
    services.backups.remove_system_schedule()
    audit("backup.schedule.system.remove", "@system")
    return Response(status_code=204)


@router.get("/instances/{name}/schedule", response_model=ScheduleRead,
            summary="Show an instance's schedule")
async def get_schedule(name: str, services: ServicesDep) -> ScheduleRead:
    """Return the instance's schedule and retention (404 if it has none)."""
    return services.backups.schedule(check_name(name))


@router.put("/instances/{name}/schedule", response_model=ScheduleRead,
            summary="Set an instance's schedule")
async def put_schedule(name: str, request: ScheduleRequest, services: ServicesDep,
                       audit: AuditDep) -> ScheduleRead:
    """Create or replace the instance's schedule and retention (kept counts are validated:
    a policy that keeps nothing is refused)."""
    read = services.backups.set_schedule(check_name(name), request)
    audit("backup.schedule.set", name, every=read.every.value, at=read.at)
    return read


@router.delete("/instances/{name}/schedule", status_code=204,
               summary="Remove an instance's schedule")
async def delete_schedule(name: str, services: ServicesDep, audit: AuditDep) -> Response:
    """Stop backing the instance up on a schedule (its backups stay)."""
    services.backups.remove_schedule(check_name(name))
    audit("backup.schedule.remove", name)
    return Response(status_code=204)


@router.post("/instances/{name}/prune", response_model=PruneRead,
             summary="Apply a retention now")
async def prune(name: str, request: PruneRequest, services: ServicesDep,
                audit: AuditDep) -> PruneRead:
    """Forget the instance's scheduled backups the retention does not keep (dry run first,
    always; only scheduled backups of this instance; something is always kept)."""
    read = await services.backups.prune(check_name(name), request,
                                        repository=request.repository, dry_run=request.dry_run)
    if not request.dry_run:
        audit("backup.prune", name, removed=len(read.removed))
    return read


@router.get("/repositories/{repo}/key", response_model=RepositoryKey,
            summary="Show a repository's recovery kit")
async def repository_key(repo: RepoPath, services: ServicesDep,
                         audit: AuditDep) -> RepositoryKey:
    """Return the repository's password: without it, its backups cannot be read (audited)."""
    key = services.backups.key(repo)
    audit("backup.repository.key", repo)
    return key


@router.get("/ssh-key", response_model=SshKeyRead, summary="Show StackHub's SSH key")
async def ssh_key(services: ServicesDep) -> SshKeyRead:
    """Return the public key StackHub uses for sftp: repositories (made on first use)."""
    return services.backups.ssh_key()


@router.get("", response_model=list[SnapshotRead], summary="List backups")
async def list_backups(
        services: ServicesDep,
        instance: Annotated[str | None, Query(max_length=40, pattern=r"^[a-z0-9][a-z0-9-]*$",
                                              description="Only backups of this instance")]
        = None,
        repository: Annotated[str | None, Query(pattern=REPO_NAME, description="Repository "
                                                "(default: the default one)")] = None,
) -> list[SnapshotRead]:
    """Return the backups in one repository, newest first."""
    return await services.backups.snapshots(instance=instance, repository=repository)


@router.post("/instances/{name}", response_model=Accepted, status_code=202,
             summary="Back up an instance")
async def create_backup(name: str, services: ServicesDep, audit: AuditDep,
                        request: BackupRequest | None = None) -> Accepted:
    """Stop the instance, snapshot its definition, folders and volumes, start it again."""
    accepted = await services.backups.create(check_name(name), request or BackupRequest())
    audit("backup.create", name, operation=accepted.operation.id)
    return accepted


@router.post("/instances/{name}/snapshots/{snapshot}/restore", response_model=Accepted,
             status_code=202, summary="Restore an instance from a backup")
async def restore_backup(name: str, snapshot: SnapshotPath, services: ServicesDep,
                         audit: AuditDep, request: RestoreRequest | None = None) -> Accepted:
    """Restore into fresh folders, swap in (old data kept until success), start.

    Works when the instance no longer exists (its record comes back from the snapshot).
    """
    accepted = await services.backups.restore(check_name(name), snapshot,
                                              request or RestoreRequest())
    audit("backup.restore", name, snapshot=snapshot, operation=accepted.operation.id)
    return accepted
