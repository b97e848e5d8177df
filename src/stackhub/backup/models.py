"""Request and read models of the backup domain."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stackhub.apps.models import Accepted, OperationRead, PortMapping

REPO_NAME = r"^[a-z][a-z0-9-]{0,39}$"


class RepositoryKind(StrEnum):
    """Where a repository lives (by its URL's scheme)."""

    LOCAL = "local"
    SFTP = "sftp"
    S3 = "s3"
    REST = "rest"


class RepositoryCreate(BaseModel):
    """Add a repository: a name, a restic URL, and S3 keys for `s3:` URLs."""

    name: str = Field(pattern=REPO_NAME, description="Lower-case name, e.g. `nas`")
    url: str = Field(min_length=1, max_length=1000, description="`sftp:user@host:/path`, "
                     "`s3:https://host/bucket`, `rest:https://host/`, or an absolute path")
    access_key_id: str | None = Field(default=None, max_length=200,
                                      description="S3 access key id (s3: only)")
    secret_access_key: str | None = Field(default=None, max_length=200,
                                          description="S3 secret key (s3: only; never shown "
                                          "again)")
    password: str | None = Field(default=None, min_length=8, max_length=500,
                                 description="The password of an existing repository to "
                                 "connect; omitted: a new repository is created with a "
                                 "generated password")


class RepositoryRead(BaseModel):
    """A repository as the API shows it (never its password or keys)."""

    name: str
    url: str
    kind: RepositoryKind
    default: bool = Field(description="The repository `backup create` uses without --repo")
    created_at: str


class RepositoryKey(BaseModel):
    """The recovery kit of a repository: without this password its backups are lost."""

    name: str
    url: str
    password: str
    access_key_id: str | None = Field(default=None, description="S3: the access key id.")
    secret_access_key: str | None = Field(default=None, description="S3: the secret key.")
    ssh_private_key: str | None = Field(default=None, description=(
        "SFTP: the private key StackHub generated, whose public half the SFTP server trusts."))
    kit: str = Field(default="", description=(
        "All of it as the text file to keep (what `stackhub restore-system --kit` reads)."))
    warning: str = ("Keep this kit somewhere safe, away from this server: without it the "
                    "backups in this repository cannot be read by anyone, and anyone who has "
                    "it can read them (and reach the repository with its keys).")


class SystemBackupAccepted(BaseModel):
    """The answer to a system backup: the operation making it (subject `@system`)."""

    operation: OperationRead
    repository: str = Field(description="The repository the snapshot goes to.")


class CheckRead(BaseModel):
    """The result of `restic check` on a repository."""

    name: str
    ok: bool
    output: str
    damaged_packs: list[str] = Field(default_factory=list, description=(
        "Ids of pack files the check found damaged (read with --read-data-subset)."))
    damaged_snapshots: list[SnapshotRead] = Field(default_factory=list, description=(
        "Snapshots holding data of a damaged pack: they cannot be restored whole."))


class BackupRequest(BaseModel):
    """Options of a backup (all optional)."""

    repository: str | None = Field(default=None, pattern=REPO_NAME,
                                   description="Repository name (default: the default one)")


class RestoreRequest(BaseModel):
    """Options of a restore (all optional)."""

    repository: str | None = Field(default=None, pattern=REPO_NAME,
                                   description="Repository name (default: the default one)")
    as_name: str | None = Field(default=None, max_length=40,
                                description="Restore as a new instance of this name, beside "
                                "the original (new ports, same secrets); the name must be free")
    accept_risks: str | None = Field(default=None, max_length=80,
                                     description="The digest of risky options the snapshot's "
                                     "definition has and the instance did not (from the 428 "
                                     "answer's details), accepted by an admin")


class SnapshotRead(BaseModel):
    """One backup of an instance."""

    id: str = Field(description="restic's snapshot id (64 hex digits)")
    short_id: str
    instance: str
    app: str
    version: str
    kind: str = Field(description="manual, scheduled or pre-update")
    time: str
    repository: str
    size: int | None = Field(default=None, description="Bytes backed up (when recorded)")


class SshKeyRead(BaseModel):
    """StackHub's SSH public key: add it to the SFTP server's authorized_keys."""

    public_key: str


class Every(StrEnum):
    """How often a scheduled backup runs."""

    HOURLY = "hourly"
    DAILY = "daily"
    WEEKLY = "weekly"


class Retention(BaseModel):
    """Which scheduled backups of an instance to keep (restic's `--keep-*`), per instance.

    Only snapshots of kind `scheduled` of the one instance are ever pruned: manual and
    pre-update backups are kept until removed by hand. At least one count must be above 0.
    """

    model_config = ConfigDict(extra="forbid")

    keep_last: int = Field(default=0, ge=0, le=1000, description="Keep the N latest")
    keep_daily: int = Field(default=7, ge=0, le=1000, description="Keep one a day, N days")
    keep_weekly: int = Field(default=4, ge=0, le=1000, description="Keep one a week, N weeks")
    keep_monthly: int = Field(default=6, ge=0, le=1000,
                              description="Keep one a month, N months")

    @model_validator(mode="after")
    def _keeps_something(self) -> Retention:
        if not (self.keep_last or self.keep_daily or self.keep_weekly or self.keep_monthly):
            raise ValueError("a retention that keeps nothing would delete every backup: give "
                             "at least one keep count above 0")
        return self

    def flags(self) -> dict[str, int]:
        """Return the policy as restic keep counts (last, daily, weekly, monthly)."""
        return {"last": self.keep_last, "daily": self.keep_daily, "weekly": self.keep_weekly,
                "monthly": self.keep_monthly}


class ScheduleRequest(Retention):
    """When to back an instance up, where, and what to keep."""

    every: Every = Field(default=Every.DAILY)
    at: str = Field(default="03:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
                    description="HH:MM in the server's time zone (hourly: only the minute "
                    "counts)")
    weekday: int = Field(default=0, ge=0, le=6, description="Weekly: 0 Monday ... 6 Sunday")
    repository: str | None = Field(default=None, pattern=REPO_NAME,
                                   description="Repository name (default: the default one)")
    enabled: bool = True


class ScheduleRead(ScheduleRequest):
    """An instance's backup schedule."""

    instance: str
    source: Literal["instance", "default"] = Field(
        default="instance", description="The instance's own schedule, or the default one "
        "(it applies to every instance without its own)")
    next_run_at: str | None = Field(description="UTC time of the next run (None: disabled)")
    created_at: str
    updated_at: str


class DefaultScheduleRead(ScheduleRequest):
    """The default schedule: it applies to every instance without its own (now and later)."""

    instances: list[str] = Field(description="The instances it applies to now (an instance "
                                 "with its own schedule, even a paused one, is not among them)")
    next_run_at: str | None = Field(description="UTC time of the next run (None: disabled)")
    created_at: str
    updated_at: str


class BackupHealth(StrEnum):
    """How an instance's backups stand."""

    OK = "ok"
    FAILED = "failed"
    MISSING = "missing"
    NONE = "none"


class BackupStatusRead(BaseModel):
    """The last good and the last failed backup of an instance, and whether to worry."""

    instance: str
    health: BackupHealth = Field(description="ok; failed (the latest backup failed); missing "
                                 "(scheduled, and no good backup 24 h after a run that was "
                                 "due); none (never backed up, no schedule)")
    alert: bool = Field(description="True when health is failed or missing")
    message: str
    scheduled: bool
    last_success_at: str | None
    last_snapshot: str | None
    last_repository: str | None
    last_failure_at: str | None
    last_error: str | None
    next_run_at: str | None
    schedule_source: Literal["instance", "default", "system"] | None = Field(
        default=None, description="Which schedule applies: the instance's own, the default, "
        "the system backup's (instance `@system`), or none")


class SystemScheduleRead(ScheduleRequest):
    """The system backup's schedule: its retention prunes scheduled system snapshots only."""

    next_run_at: str | None = Field(description="UTC time of the next run (None: paused)")
    created_at: str
    updated_at: str
    status: BackupStatusRead = Field(description="How the system backups stand (instance "
                                     "`@system`): missing 24 h after a due run that did not "
                                     "succeed")


class PruneRead(BaseModel):
    """What a retention run kept and removed (or would, for a dry run)."""

    instance: str
    repository: str
    dry_run: bool
    kept: list[str] = Field(description="Snapshot ids kept")
    removed: list[str] = Field(description="Snapshot ids removed (or to remove)")


class RepositoryCheckRead(BaseModel):
    """The last check of a repository (manual or periodic)."""

    repository: str
    checked_at: str
    ok: bool
    error: str | None = Field(default=None, description="The gist of what the failed check "
                              "reported: its first error line (None when it was sound)")
    next_check_at: str


class PruneRequest(Retention):
    """Apply a retention to an instance's scheduled backups now."""

    repository: str | None = Field(default=None, pattern=REPO_NAME,
                                   description="Repository name (default: the default one)")
    dry_run: bool = Field(default=True, description="Only say what would be removed")


class CloneRequest(BaseModel):
    """Clone an instance: a copy with its data under a new name (new ports, same secrets)."""

    name: str = Field(max_length=40, description="The new instance's name; it must be free")
    accept_risks: str | None = Field(default=None, max_length=80,
                                     description="The digest of risky options the copy would "
                                     "have and the original does not (from a 428 answer)")


class CloneAccepted(Accepted):
    """The answer to a clone: the operation, and the host ports the copy gets."""

    source: str
    ports: list[PortMapping] = Field(description="The copy's host ports, picked free like "
                                     "an install's")
