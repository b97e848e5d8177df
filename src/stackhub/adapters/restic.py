"""The restic adapter: argument lists, `--json` output parsed into typed records and events.

Every call passes the repository password by file (`--password-file`, never argv or stdin),
S3 keys by environment, and holds an in-process lock per repository (`repo_lock.py`): plain
reads (`restore`, `ls`, `snapshots`, `dump`, `find`) may run side by side, any other command
runs alone. A lock left by a killed run (restic died with the server) is cleared with
`restic unlock`, which removes only stale locks (a live run's lock is never stale), and only
while this process holds the repository. restic's failures become `errors.py`
errors with messages that say what to do.

Reads that only look (`snapshots`, `ls`, `dump`, `find`, `extract(lock=False)`) pass
`--no-lock`: restic's lock costs each run ~0.2 s (it waits before checking that no other
lock appeared), and a look changes nothing, so the worst a concurrent `prune` by another
machine can do is make it fail with restic's error. Commands that write (`backup`, `forget`,
`check`'s exclusive lock) keep the lock. The restores that fetch an instance's data keep it
on repositories others may share (remote ones, or a password the user gave) and skip it on
a local repository StackHub made (one with a light key, `Repository.key_hint`): only the
recovery kit's holder could prune it meanwhile, and then the restore fails cleanly and rolls
back (restic checks every blob it reads), while the lock costs every restore ~0.2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stackhub.adapters import restic_key
from stackhub.adapters.compose import death_pact
from stackhub.adapters.repo_lock import RepoLock
from stackhub.errors import (
    Conflict,
    Invalid,
    NotFound,
    RepositoryError,
    StackHubError,
    StorageFull,
)

RESTIC = "restic"
TIMEOUT = 6 * 3600.0
"""The longest one restic command may run (a first backup of a large app over a slow link)."""
_ENV_PASSED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR")


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class BackupProgress(_Record):
    """A `status` line of `restic backup --json`."""

    percent_done: float = 0.0
    total_files: int = 0
    files_done: int = 0
    total_bytes: int = 0
    bytes_done: int = 0
    seconds_remaining: int | None = None

    @property
    def percent(self) -> float:
        """Return the share done in percent (0 to 100)."""
        return max(0.0, min(100.0, self.percent_done * 100.0))


class BackupSummary(_Record):
    """The `summary` line of `restic backup --json` (snapshot_id is short in restic 0.14)."""

    snapshot_id: str
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    data_added: int = 0
    total_files_processed: int = 0
    total_bytes_processed: int = 0
    total_duration: float = 0.0


class Snapshot(_Record):
    """One snapshot of `restic snapshots --json`."""

    id: str
    short_id: str = ""
    time: str
    paths: list[str] = Field(default_factory=list)
    hostname: str = ""
    tags: list[str] = Field(default_factory=list)

    def tag(self, key: str) -> str | None:
        """Return the value of a `key=value` tag, or None."""
        for tag in self.tags:
            name, sep, value = tag.partition("=")
            if sep and name == key:
                return value
        return None


class Node(_Record):
    """One entry of `restic ls --json SNAPSHOT` (paths relative to the snapshot's root)."""

    path: str
    type: str
    size: int = 0
    mode: int = 0
    uid: int = 0
    gid: int = 0
    linktarget: str | None = None


class RestoreStats(_Record):
    """What a restore wrote (restic 0.14 prints no restore progress)."""

    files: int
    bytes: int


class ForgetPlan(_Record):
    """What a retention policy keeps and removes (`forget --dry-run --json`, one group)."""

    keep: list[Snapshot] = Field(default_factory=list)
    remove: list[Snapshot] = Field(default_factory=list)


KEEP_FLAGS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")


@dataclass(frozen=True)
class Repository:
    """How to reach one repository: URL, password file, environment (S3 keys), options."""

    name: str
    url: str
    password_file: Path
    env: Mapping[str, str] = field(default_factory=dict)
    options: Sequence[str] = ()
    key_hint: str | None = None
    """The id of StackHub's light key (`restic_key.py`), tried first; None: restic's search."""

    def args(self) -> list[str]:
        """Return the global arguments naming this repository (never the password)."""
        out = ["--repo", self.url, "--password-file", str(self.password_file), "--no-cache"]
        if self.key_hint:
            out += ["--key-hint", self.key_hint]
        for option in self.options:
            out += ["--option", option]
        return out


Report = Callable[[BackupProgress], None]


class Restic(Protocol):
    """What StackHub asks of restic (ResticCli; tests may give a fake)."""

    async def version(self) -> str: ...
    async def init(self, repo: Repository) -> None: ...
    async def open(self, repo: Repository) -> None: ...
    async def add_light_key(self, repo: Repository) -> str: ...
    async def backup(self, repo: Repository, paths: list[str], *, cwd: Path, tags: list[str],
                     host: str, report: Report | None = None,
                     excludes: Sequence[Path] = (), live: Sequence[str] = (),
                     released: Callable[[], None] | None = None) -> BackupSummary: ...
    async def snapshots(self, repo: Repository, *, tags: list[str] | None = None
                        ) -> list[Snapshot]: ...
    async def ls(self, repo: Repository, snapshot: str) -> list[Node]: ...
    async def listing(self, repo: Repository, snapshot: str, *, tags: list[str] | None = None
                      ) -> tuple[Snapshot | None, list[Node]]: ...
    async def dump(self, repo: Repository, snapshot: str, path: str, *,
                   limit: int = 4 << 20) -> bytes: ...
    async def restore(self, repo: Repository, snapshot: str, target: Path, *,
                      excludes: Sequence[str] = ()) -> None: ...
    async def extract(self, repo: Repository, snapshot: str, paths: list[str],
                      target: Path, *, timeout: float = 600, lock: bool = True) -> None: ...
    async def check(self, repo: Repository, *, read_data_subset: str | None = None) -> str: ...
    async def find_packs(self, repo: Repository, packs: list[str]) -> list[str]: ...
    async def forget(self, repo: Repository, snapshot_ids: list[str]) -> None: ...
    async def forget_plan(self, repo: Repository, *, tags: list[str], host: str,
                          keep: Mapping[str, int]) -> ForgetPlan: ...


def _place_key(keys: Path, key_id: str, raw: bytes) -> None:
    """Write a key file as restic does: read-only, fsynced, under its content's hash."""
    if not keys.is_dir() or keys.is_symlink():
        raise RepositoryError(f"{keys} is not a restic keys folder")
    fd, tmp = tempfile.mkstemp(dir=keys.parent, prefix=".stackhub-key-")
    try:
        os.fchmod(fd, 0o400)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(keys / key_id)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    folder = os.open(keys, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


REFUSED_KEYS = (  # S3 (minio-go prints the message, sometimes the code) and REST refusals
    "access denied", "accessdenied", "invalidaccesskeyid",
    "access key id you provided does not exist", "signaturedoesnotmatch",
    "signature we calculated does not match", "invalidtoken", "expiredtoken",
    "security token included in the request is invalid", "403 forbidden",
    "401 unauthorized", "unauthorized")


def translate(stderr: str, repo: Repository, action: str) -> StackHubError:
    """Map a restic failure to a StackHub error with a readable message."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    tail = " ".join(lines[-3:])[-600:] if lines else "no output"
    low = stderr.lower()
    where = f"backup repository {repo.name!r}"
    if "wrong password" in low or "no key found" in low:
        return RepositoryError(f"{action}: the password of {where} is wrong (its key file in "
                               "StackHub's secrets does not open it); nothing was changed",
                               details={"reason": "wrong_password", "repository": repo.name})
    if "repository is already locked" in low or "unable to create lock" in low:
        return Conflict(f"{action}: {where} is locked by another restic run; wait for it to "
                        f"finish ({tail})", details={"reason": "locked",
                                                    "repository": repo.name})
    if "no space left on device" in low or "disk quota exceeded" in low:
        return StorageFull(f"{action}: no space left on the disk ({tail}); free some space and "
                           "try again", details={"repository": repo.name})
    if "config file already exists" in low:
        return Conflict(f"{action}: {where} is already initialised at {repo.url}",
                        details={"reason": "exists", "repository": repo.name})
    if "no matching id found" in low or "no snapshot found" in low or \
            "no matching snapshot" in low:
        return NotFound(f"{action}: no such snapshot in {where}")
    if any(word in low for word in REFUSED_KEYS):
        keys = "the access key id and secret access key" if repo.url.startswith("s3:") else \
            "the credentials"
        return RepositoryError(f"{action}: {where} refuses {keys} StackHub has for it "
                               f"({tail}); the server answers, but the keys are wrong, "
                               "expired or not allowed on this bucket: add the repository "
                               "again with the right keys",
                               details={"reason": "credentials", "repository": repo.name})
    unreachable = ("unable to open config file", "is there a repository", "connection refused",
                   "no such host", "timeout", "timed out", "unable to start the sftp session",
                   "network is unreachable", "no such file or directory",
                   "ssh command exited", "connection reset", "bucket")
    if any(word in low for word in unreachable):
        return RepositoryError(f"{action}: {where} cannot be reached or opened at {repo.url} "
                               f"({tail}); check the address, credentials and network",
                               details={"reason": "unreachable", "repository": repo.name})
    return RepositoryError(f"{action} failed for {where}: {tail}",
                           details={"reason": "failed", "repository": repo.name})


def parse_backup_line(line: str) -> BackupProgress | BackupSummary | None:
    """Parse one line of `restic backup --json`; other lines (errors, text) give None."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        if data.get("message_type") == "status":
            return BackupProgress.model_validate(data)
        if data.get("message_type") == "summary":
            return BackupSummary.model_validate(data)
    except ValidationError:
        return None
    return None


def _json_list(out: str, what: str) -> list[Any]:
    """Parse a JSON array (snapshots) or JSON lines (ls) into a list of objects."""
    text = out.strip()
    if not text:
        return []
    try:
        if text.startswith("["):
            value = json.loads(text)
            return list(value) if isinstance(value, list) else []
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as err:
        raise RepositoryError(f"restic printed unreadable {what}: {err}") from err


class ResticCli:
    """The restic adapter: one method per command; reads share a repository, others not."""

    def __init__(self, binary: str | None = None) -> None:
        """Use `binary` (default: restic on PATH)."""
        self.binary = binary or shutil.which(RESTIC) or RESTIC
        self._locks: dict[str, RepoLock] = {}

    def _lock(self, repo: Repository) -> RepoLock:
        return self._locks.setdefault(repo.url, RepoLock())

    def _env(self, repo: Repository) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k in _ENV_PASSED}
        env.update(repo.env)
        env["RESTIC_PROGRESS_FPS"] = "4"
        return env

    async def _spawn(self, repo: Repository, args: list[str],
                     cwd: Path | None) -> asyncio.subprocess.Process:
        """Start restic bound to die with the server, so its lock is stale after a crash."""
        pact = death_pact()
        if shutil.which(self.binary) is None:
            raise RepositoryError("restic is not installed: run scripts/bootstrap, or "
                                  "`apt-get install restic`")
        return await asyncio.create_subprocess_exec(
            *pact, self.binary, *repo.args(), *args, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self._env(repo),
            cwd=str(cwd) if cwd else None, limit=1 << 22)

    async def _once(self, repo: Repository, args: list[str], *, cwd: Path | None,
                    on_line: Callable[[str], None] | None, timeout: float
                    ) -> tuple[int, str, str]:
        proc = await self._spawn(repo, args, cwd)
        assert proc.stdout is not None and proc.stderr is not None
        out: list[str] = []

        async def read_out() -> None:
            assert proc.stdout is not None
            async for raw in proc.stdout:
                line = raw.decode(errors="replace")
                if on_line is not None:
                    on_line(line)
                else:
                    out.append(line)

        try:
            _, err, _ = await asyncio.wait_for(asyncio.gather(
                read_out(), proc.stderr.read(), proc.wait()), timeout)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        return int(proc.returncode or 0), "".join(out), err.decode(errors="replace")

    async def _run(self, repo: Repository, args: list[str], *, action: str,
                   cwd: Path | None = None, on_line: Callable[[str], None] | None = None,
                   timeout: float = TIMEOUT, locks: bool = True, shared: bool = False,
                   keep_err: list[str] | None = None) -> str:
        """Run one command under the repository's lock; clear a stale lock once and retry.

        `shared` for plain reads, which may run beside each other; `keep_err`, if given,
        receives the failed run's standard error.
        """
        async with self._lock(repo).hold(shared=shared):
            code, out, err = await self._once(repo, args, cwd=cwd, on_line=on_line,
                                              timeout=timeout)
            if code != 0 and locks and "already locked" in err.lower():
                # no StackHub run holds it exclusively (we hold the in-process lock): a killed
                # run's lock is stale, and `unlock` removes only stale locks (dead PID or
                # > 30 min old), never the lock of a read running beside this one
                await self._once(repo, ["unlock"], cwd=None, on_line=None, timeout=120)
                code, out, err = await self._once(repo, args, cwd=cwd, on_line=on_line,
                                                  timeout=timeout)
        if code != 0:
            if keep_err is not None:
                keep_err.append(err)
            raise translate(err, repo, action)
        return out

    async def version(self) -> str:
        """Return restic's version line."""
        proc = await asyncio.create_subprocess_exec(self.binary, "version",
                                                    stdout=subprocess.PIPE,
                                                    stderr=subprocess.DEVNULL)
        out, _ = await proc.communicate()
        return out.decode().strip()

    async def init(self, repo: Repository) -> None:
        """Create an encrypted repository (restic 0.14: format v2, compressed)."""
        await self._run(repo, ["init"], action="creating the repository", locks=False,
                        timeout=300)

    async def open(self, repo: Repository) -> None:
        """Check that the repository exists and the password opens it (lists keys only)."""
        await self._run(repo, ["cat", "config"], action="opening the repository",
                        locks=False, timeout=300)

    async def add_light_key(self, repo: Repository) -> str:
        """Add a key with light scrypt settings to a local repository; return its id.

        Only for a password StackHub generated (see `restic_key.py`). restic reads the master
        key once (`cat masterkey`, the slow derivation); the key file is written beside the
        others (temp file in the repository's root, then renamed), and restic must then open
        the repository with it (`key list` marks the key it used) or the file is removed.
        """
        if not repo.url.startswith("/"):
            raise Invalid("a light key is only added to a local repository")
        keys = Path(repo.url) / "keys"
        printed = await self._run(replace(repo, key_hint=None), ["cat", "masterkey", "--no-lock"],
                                  action="reading the repository's master key", locks=False,
                                  timeout=300)
        password = repo.password_file.read_text().strip()
        try:
            key_id, raw = restic_key.key_file(restic_key.master_json(printed), password)
        except restic_key.KeyFileError as err:
            raise RepositoryError(f"cannot make a light key: {err}") from err
        await asyncio.to_thread(_place_key, keys, key_id, raw)
        try:
            listed = await self._run(replace(repo, key_hint=key_id),
                                     ["key", "list", "--json", "--no-lock"],
                                     action="opening the repository with the light key",
                                     locks=False, timeout=300)
            used = [k.get("id") for k in _json_list(listed, "keys")
                    if isinstance(k, dict) and k.get("current")]
            if used != [key_id[:8]]:  # restic 0.14 lists short ids
                raise RepositoryError(f"restic did not open the repository with the light key "
                                      f"(it used {used})")
        except BaseException:
            (keys / key_id).unlink(missing_ok=True)
            raise
        return key_id

    async def backup(self, repo: Repository, paths: list[str], *, cwd: Path, tags: list[str],
                     host: str, report: Report | None = None,
                     excludes: Sequence[Path] = (), live: Sequence[str] = (),
                     released: Callable[[], None] | None = None) -> BackupSummary:
        """Back up `paths` (relative to `cwd`, so snapshots hold relative trees).

        An absolute path (a volume's folder read in place) is held at its full path.
        `excludes` are absolute paths left out (matched exactly: glob characters refused).
        `released` is called once restic is done reading every folder of `live` (some of
        `paths`), while it goes on with the others: run with `-vv`, restic reports each
        folder's end (a `verbose_status` line naming it) only once everything under it
        has been read, and never reads it again.
        """
        if not paths or any(not p or p.startswith("-") or "\0" in p or
                            (p.startswith("/") and p != os.path.normpath(p)) for p in paths):
            raise Invalid("backup paths must be relative or normalised absolute paths and may "
                          "not start with '-'")
        for path in excludes:
            if not path.is_absolute() or any(c in str(path) for c in "*?[]\\\0"):
                raise Invalid(f"backup exclude {str(path)!r} must be an absolute path without "
                              "glob characters")
        found: list[BackupSummary] = []
        waiting = {f"/{p.strip('/')}/" for p in live} if released is not None else set()

        def line(text: str) -> None:
            if text.startswith('{"message_type":"verbose_status"'):  # one per file: cheap
                if waiting and '/",' in text:  # only a folder's item ends with a slash
                    _read_folder(text)
                return
            parsed = parse_backup_line(text)
            if isinstance(parsed, BackupSummary):
                found.append(parsed)
            elif isinstance(parsed, BackupProgress) and report is not None:
                report(parsed)

        def _read_folder(text: str) -> None:
            with contextlib.suppress(ValueError, AttributeError):
                item = json.loads(text).get("item")
                if item in waiting:
                    waiting.discard(item)
                    if not waiting and released is not None:
                        released()

        args = ["backup", "--json", "--host", host, *(["-vv"] if waiting else [])]
        for tag in tags:
            args += ["--tag", tag]
        for path in excludes:
            args += ["--exclude", str(path)]
        await self._run(repo, [*args, "--", *paths], action="the backup", cwd=cwd,
                        on_line=line)
        if not found:
            raise RepositoryError("restic ended the backup without a summary; the snapshot "
                                  "may be missing")
        return found[-1]

    async def snapshots(self, repo: Repository, *,
                        tags: list[str] | None = None) -> list[Snapshot]:
        """List snapshots (all of `tags` when given), oldest first."""
        args = ["snapshots", "--json", "--no-lock"]
        if tags:
            args += ["--tag", ",".join(tags)]
        out = await self._run(repo, args, action="listing snapshots", timeout=600,
                              shared=True)
        try:
            return [Snapshot.model_validate(s) for s in _json_list(out, "snapshots")]
        except ValidationError as err:
            raise RepositoryError(f"restic listed an unreadable snapshot: {err}") from err

    async def ls(self, repo: Repository, snapshot: str) -> list[Node]:
        """List every node of a snapshot."""
        return (await self.listing(repo, snapshot))[1]

    async def listing(self, repo: Repository, snapshot: str, *,
                      tags: list[str] | None = None) -> tuple[Snapshot | None, list[Node]]:
        """Return a snapshot (None if restic named none) and its nodes, with one restic run.

        `tags` narrow which snapshot `latest` means (all of them must be on it).
        """
        args = ["ls", "--json", "--no-lock"] + (["--tag", ",".join(tags)] if tags else [])
        out = await self._run(repo, [*args, "--", _ref(snapshot)],
                              action="listing the snapshot", timeout=1800, shared=True)
        nodes: list[Node] = []
        found: Snapshot | None = None
        for item in _json_list(out, "snapshot contents"):
            if not isinstance(item, dict):
                continue
            try:
                if item.get("struct_type") == "node":
                    nodes.append(Node.model_validate(item))
                elif item.get("struct_type") == "snapshot" and found is None:
                    found = Snapshot.model_validate(item)
            except ValidationError as err:
                raise RepositoryError(f"the snapshot lists an unreadable entry: {err}") \
                    from err
        return found, nodes

    async def dump(self, repo: Repository, snapshot: str, path: str, *,
                   limit: int = 4 << 20) -> bytes:
        """Return one small file of a snapshot (refused above `limit` bytes)."""
        out = await self._run(repo, ["dump", "--no-lock", "--", _ref(snapshot), path],
                              action=f"reading {path} from the snapshot", timeout=600,
                              shared=True)
        data = out.encode()
        if len(data) > limit:
            raise Invalid(f"{path} in the snapshot is larger than {limit} bytes")
        return data

    async def restore(self, repo: Repository, snapshot: str, target: Path, *,
                      excludes: Sequence[str] = ()) -> None:
        """Restore a snapshot into `target`, which must be an empty folder; `excludes`
        (normalised absolute paths in the snapshot, no glob characters) are left out."""
        if target.exists() and any(target.iterdir()):
            raise Invalid(f"restore target {target} is not empty")
        args = ["restore", "--target", str(target), *_fetch_lock(repo, True)]
        for path in _plain(excludes):
            args += ["--exclude", path]
        await self._run(repo, [*args, "--", _ref(snapshot)], action="the restore",
                        shared=True)

    async def extract(self, repo: Repository, snapshot: str, paths: list[str],
                      target: Path, *, timeout: float = 600, lock: bool = True) -> None:
        """Restore only these files of a snapshot (absolute paths in it) into empty `target`.

        One restic run for several small files, where `dump` needs one each; a path the
        snapshot lacks is simply not written. `lock=False` for a look at a few files (no
        repository lock: see the module's note on reads).
        """
        if not paths:
            raise Invalid("name at least one file to extract")
        _plain(paths)
        if target.exists() and any(target.iterdir()):
            raise Invalid(f"restore target {target} is not empty")
        args = ["restore", "--target", str(target), *_fetch_lock(repo, lock)]
        for path in paths:
            args += ["--include", path]
        await self._run(repo, [*args, "--", _ref(snapshot)],
                        action="reading files from the snapshot", timeout=timeout,
                        shared=True)

    async def check(self, repo: Repository, *, read_data_subset: str | None = None) -> str:
        """Check the repository's structure (and a share of its data); return restic's text.

        A repository with errors raises RepositoryError whose details hold `output` (restic's
        full report) and `packs` (ids of damaged pack files it names).
        """
        args = ["check"]
        if read_data_subset:
            args.append(f"--read-data-subset={read_data_subset}")
        report: list[str] = []
        try:
            await self._run(repo, args, action="checking the repository",
                            on_line=report.append, keep_err=report)
        except RepositoryError as err:
            text = "".join(report)
            err.details.update(output=text[-8000:], packs=damaged_packs(text))
            raise
        return "".join(report)

    async def find_packs(self, repo: Repository, packs: list[str]) -> list[str]:
        """Return the ids of the snapshots holding any blob of these pack files."""
        ids = [p for p in packs if len(p) == 64 and all(c in "0123456789abcdef" for c in p)]
        if not ids:
            return []
        out = await self._run(repo, ["find", "--json", "--no-lock", "--pack", "--", *ids],
                              action="finding the snapshots of damaged packs", timeout=1800,
                              shared=True)
        found: list[str] = []
        for item in _json_list(out, "find results"):
            for entry in item if isinstance(item, list) else [item]:
                snap = entry.get("snapshot") if isinstance(entry, dict) else None
                if isinstance(snap, str) and snap not in found:
                    found.append(snap)
        return found

    async def forget(self, repo: Repository, snapshot_ids: list[str]) -> None:
        """Forget exactly these snapshots by id and prune (never by tag or policy)."""
        ids = [_ref(s) for s in snapshot_ids]
        if not ids:
            return
        await self._run(repo, ["forget", "--prune", "--", *ids], action="forgetting snapshots")

    async def forget_plan(self, repo: Repository, *, tags: list[str], host: str,
                          keep: Mapping[str, int]) -> ForgetPlan:
        """Ask restic what a policy would keep and remove, changing nothing (`--dry-run`).

        Only snapshots with every one of `tags` and `host` are considered, as one group. The
        policy is `--keep-<key> N` flags with N > 0 for keys of KEEP_FLAGS only (never
        `--keep-tag`, which deletes everything on a typo in restic 0.14); an empty policy is
        refused, since restic would then remove every snapshot of the group.
        """
        flags: list[str] = []
        for key, count in keep.items():
            if key not in KEEP_FLAGS or not isinstance(count, int) or count < 0:
                raise Invalid(f"retention: {key}={count!r} is not a keep-last/hourly/daily/"
                              "weekly/monthly/yearly count")
            if count:
                flags += [f"--keep-{key}", str(count)]
        if not flags:
            raise Invalid("retention keeps nothing: give at least one keep count above 0")
        if not tags or any("," in t or t.startswith("-") or not t for t in tags):
            raise Invalid(f"retention needs plain tags to select snapshots, not {tags!r}")
        out = await self._run(repo, ["forget", "--dry-run", "--json", "--group-by", "",
                                     "--host", host, "--tag", ",".join(tags), *flags],
                              action="planning the retention", timeout=600)
        try:
            groups = [ForgetPlan.model_validate(
                {k: v or [] for k, v in g.items() if k in ("keep", "remove")})
                for g in _json_list(out, "forget")]
        except (ValidationError, AttributeError) as err:
            raise RepositoryError(f"restic answered the retention plan unreadably: {err}") \
                from err
        return ForgetPlan(keep=[s for g in groups for s in g.keep],
                          remove=[s for g in groups for s in g.remove])


_PACK = re.compile(r"(?i)\bpack(?: id does not match, want)? ([0-9a-f]{64})\b")


def damaged_packs(report: str) -> list[str]:
    """Return the pack ids `restic check` names as damaged, in order, once each."""
    found: list[str] = []
    for match in _PACK.finditer(report):
        if match.group(1) not in found:
            found.append(match.group(1))
    return found


def _fetch_lock(repo: Repository, lock: bool) -> list[str]:
    """Return `--no-lock` for a read that needs no lock, or a fetch from a repository StackHub
    made and holds alone (a light key); [] to take restic's lock (see the module's note)."""
    return ["--no-lock"] if not lock or repo.key_hint else []


def _plain(paths: Sequence[str]) -> Sequence[str]:
    """Return `paths` if each is a normalised absolute path without glob characters."""
    if any(not p.startswith("/") or any(c in p for c in "*?[]\\\0") or
           p != os.path.normpath(p) for p in paths):
        raise Invalid("paths in a snapshot must be normalised absolute paths without glob "
                      "characters")
    return paths


def _ref(snapshot: str) -> str:
    """Allow only snapshot ids (hex) or `latest` as arguments."""
    if snapshot != "latest" and (not snapshot or len(snapshot) > 64 or any(
            c not in "0123456789abcdef" for c in snapshot)):
        raise Invalid(f"{snapshot!r} is not a snapshot id (hex digits) or 'latest'")
    return snapshot

