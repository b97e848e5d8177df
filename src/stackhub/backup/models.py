"""Request and read models of the backup domain."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

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
    warning: str = ("Keep this password somewhere safe, away from this server: without it "
                    "the backups in this repository cannot be read by anyone.")


class CheckRead(BaseModel):
    """The result of `restic check` on a repository."""

    name: str
    ok: bool
    output: str


class BackupRequest(BaseModel):
    """Options of a backup (all optional)."""

    repository: str | None = Field(default=None, pattern=REPO_NAME,
                                   description="Repository name (default: the default one)")


class RestoreRequest(BaseModel):
    """Options of a restore (all optional)."""

    repository: str | None = Field(default=None, pattern=REPO_NAME,
                                   description="Repository name (default: the default one)")


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
