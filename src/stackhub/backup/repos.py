"""Backup repositories: rows in SQLite, passwords and keys in 0600 files under `secrets/`."""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import subprocess
from pathlib import Path

from stackhub import fsutil
from stackhub.adapters.restic import Repository
from stackhub.backup.models import RepositoryCreate, RepositoryKind, RepositoryRead
from stackhub.config import Paths
from stackhub.errors import AlreadyExists, Invalid, NotFound
from stackhub.state.db import Database, now

DEFAULT = "local"
SFTP_URL = re.compile(r"^sftp:(?://)?(?P<user>[A-Za-z0-9][A-Za-z0-9._-]*)@"
                      r"(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*)"
                      r"(?::(?P<port>[0-9]{1,5}))?:?/[^\s]*$")
HTTP_URL = re.compile(r"^(s3|rest):https?://[A-Za-z0-9.\-\[\]:]+(/[^\s]*)?$")


def kind_of_url(url: str) -> RepositoryKind:
    """Return a URL's kind, or raise Invalid for anything restic should not be given."""
    if any(c in url for c in "\n\r\0") or url.startswith("-"):
        raise Invalid("the repository URL may not contain control characters or start with '-'")
    if url.startswith("sftp:"):
        if not SFTP_URL.match(url):
            raise Invalid("an SFTP repository looks like sftp:user@host:/path or "
                          "sftp://user@host:port//path")
        return RepositoryKind.SFTP
    if url.startswith(("s3:", "rest:")):
        if not HTTP_URL.match(url):
            raise Invalid("an S3 or REST repository looks like s3:https://host/bucket or "
                          "rest:https://host/path")
        return RepositoryKind.S3 if url.startswith("s3:") else RepositoryKind.REST
    if url.startswith("/"):
        if ".." in Path(url).parts:
            raise Invalid("a local repository path may not contain '..'")
        return RepositoryKind.LOCAL
    raise Invalid("the repository URL must be an absolute path, sftp:, s3: or rest:")


def sftp_command(url: str, folder: Path) -> str:
    """Return restic's sftp.command for `url` with the key `folder/id_ed25519`: no prompts,
    host keys pinned once in `folder/known_hosts` (Invalid for another URL or a folder path
    with spaces or quotes, which the command line cannot carry)."""
    match = SFTP_URL.match(url)
    if match is None:
        raise Invalid(f"{url!r} is not an SFTP repository URL")
    if any(c.isspace() or c in "\"'\\" for c in str(folder)):
        raise Invalid("SFTP repositories need a data root path without spaces or quotes")
    args = ["ssh", "-i", f"{folder}/id_ed25519", "-o", "IdentitiesOnly=yes", "-o",
            "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "-o",
            f"UserKnownHostsFile={folder}/known_hosts", "-o", "ConnectTimeout=15"]
    if match["port"]:
        args += ["-p", match["port"]]
    return " ".join([*args, f"{match['user']}@{match['host']}", "-s", "sftp"])


class Repositories:
    """The backup domain's repository table and secret files."""

    def __init__(self, db: Database, paths: Paths) -> None:
        """Keep rows in `db`, secrets under `paths.secrets / backup`."""
        self.db = db
        self.paths = paths
        self.folder = paths.secrets / "backup"

    @property
    def local_root(self) -> Path:
        """Return the folder of the default local repository."""
        return self.paths.root / "backups" / "repository"

    def ensure_default(self) -> None:
        """Record the local repository as the default with a generated password, on a fresh
        install only (once the table has a row, an admin's removal of `local` stands)."""
        if self.db.query("SELECT 1 FROM backup_repositories LIMIT 1"):
            return
        self._write_password(DEFAULT, secrets.token_urlsafe(32))
        with self.db.transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO backup_repositories (name, url, kind, "
                         "is_default, created_at) VALUES (?,?,?,?,?)",
                         (DEFAULT, str(self.local_root), RepositoryKind.LOCAL.value, 1, now()))

    def _password_file(self, name: str) -> Path:
        return self.folder / f"{name}.password"

    def _env_file(self, name: str) -> Path:
        return self.folder / f"{name}.env.json"

    def _hint_file(self, name: str) -> Path:
        return self.folder / f"{name}.key-hint"

    def has_light_key(self, name: str) -> bool:
        """Tell whether StackHub added its light key to a repository (`restic_key.py`)."""
        return self._hint_file(name).is_file()

    def keep_light_key(self, name: str, key_id: str) -> None:
        """Remember the id of the light key StackHub added, named to restic from now on."""
        if len(key_id) != 64 or any(c not in "0123456789abcdef" for c in key_id):
            raise Invalid(f"{key_id!r} is not a restic key id")
        fsutil.write_atomic(self._hint_file(name), key_id + "\n", mode=0o600)

    def _write_password(self, name: str, password: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        fsutil.write_atomic(self._password_file(name), password + "\n", mode=0o600)

    @staticmethod
    def _read(row: sqlite3.Row) -> RepositoryRead:
        return RepositoryRead(name=row["name"], url=row["url"], kind=RepositoryKind(row["kind"]),
                              default=bool(row["is_default"]), created_at=row["created_at"])

    def all(self) -> list[RepositoryRead]:
        """Return every repository, the default first."""
        rows = self.db.query("SELECT * FROM backup_repositories ORDER BY is_default DESC, name")
        return [self._read(r) for r in rows]

    def get(self, name: str | None) -> RepositoryRead:
        """Return one repository (None: the default) or raise NotFound."""
        rows = self.db.query("SELECT * FROM backup_repositories WHERE name = ?",
                             (name,)) if name else self.db.query(
            "SELECT * FROM backup_repositories WHERE is_default = 1")
        if not rows:
            raise NotFound(f"no backup repository named {name!r}" if name else
                           "no default backup repository")
        return self._read(rows[0])

    def handle(self, name: str | None) -> Repository:
        """Return how restic reaches a repository (password file, S3 keys)."""
        read = self.get(name)
        env: dict[str, str] = {}
        path = self._env_file(read.name)
        if path.is_file():
            env = {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
        options = [f"sftp.command={self.ssh_command(read.url)}"] \
            if read.kind == RepositoryKind.SFTP else []
        hint = self._hint_file(read.name)
        key_hint = hint.read_text().strip() if hint.is_file() else None
        return Repository(name=read.name, url=read.url, password_file=self._password_file(
            read.name), env=env, options=options, key_hint=key_hint or None)

    @property
    def ssh_folder(self) -> Path:
        """Return the folder of StackHub's own SSH key and known hosts."""
        return self.folder / "ssh"

    def ssh_key(self) -> str:
        """Return StackHub's SSH public key for SFTP repositories, making the pair once."""
        key = self.ssh_folder / "id_ed25519"
        if not key.is_file():
            self.ssh_folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                                "stackhub-backup", "-f", str(key)], check=True,
                               capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
            except (OSError, subprocess.SubprocessError) as err:
                raise Invalid(f"cannot make an SSH key for SFTP repositories ({err}); is "
                              "openssh-client installed?") from err
        return key.with_suffix(".pub").read_text().strip()

    def ssh_command(self, url: str) -> str:
        """Return restic's sftp.command: StackHub's key, no prompts, host keys pinned once."""
        if SFTP_URL.match(url) is None:
            raise Invalid(f"{url!r} is not an SFTP repository URL")
        self.ssh_key()
        return sftp_command(url, self.ssh_folder)

    def password(self, name: str) -> str:
        """Return a repository's password (for the recovery kit only)."""
        self.get(name)
        return self._password_file(name).read_text().strip()

    def add(self, request: RepositoryCreate) -> RepositoryRead:
        """Record a repository and write its secrets; restic is not asked yet."""
        kind = kind_of_url(request.url)
        if self.db.query("SELECT 1 FROM backup_repositories WHERE name = ?", (request.name,)):
            raise AlreadyExists(f"a backup repository named {request.name!r} exists already")
        if kind == RepositoryKind.S3 and not (request.access_key_id and
                                              request.secret_access_key):
            raise Invalid("an s3: repository needs access_key_id and secret_access_key")
        if kind != RepositoryKind.S3 and (request.access_key_id or request.secret_access_key):
            raise Invalid("access keys are only for s3: repositories")
        self._write_password(request.name, request.password or secrets.token_urlsafe(32))
        if kind == RepositoryKind.S3:
            fsutil.write_atomic(self._env_file(request.name), json.dumps({
                "AWS_ACCESS_KEY_ID": request.access_key_id,
                "AWS_SECRET_ACCESS_KEY": request.secret_access_key}), mode=0o600)
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO backup_repositories (name, url, kind, is_default, "
                         "created_at) VALUES (?,?,?,0,?)",
                         (request.name, request.url, kind.value, now()))
        return self.get(request.name)

    def make_default(self, name: str) -> RepositoryRead:
        """Make a repository the default (for backups and schedules that name none)."""
        self.get(name)
        with self.db.transaction() as conn:
            conn.execute("UPDATE backup_repositories SET is_default = (name = ?)", (name,))
        return self.get(name)

    def forget(self, name: str) -> None:
        """Remove a repository's record and secrets (its data stays where it is)."""
        read = self.get(name)
        if read.default:
            raise Invalid(f"{name!r} is the default backup repository and cannot be removed; "
                          "make another repository the default first (stackhub backup repo "
                          "default NAME)")
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM backup_repositories WHERE name = ?", (name,))
        for path in (self._password_file(name), self._env_file(name), self._hint_file(name)):
            path.unlink(missing_ok=True)
