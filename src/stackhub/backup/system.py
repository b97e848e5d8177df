"""Back up StackHub itself, and bring it back on a fresh data root (disaster recovery).

A system snapshot (tags `stackhub`, `system`) holds the SQLite database (copied through
SQLite's online backup API, so a running server's database is consistent), `secrets/` (admin
token, keys, repository passwords), `install-id`, every instance's project folder
(`instances/`: definitions, values, compose files) and `stores/`. Not the apps' data: each
instance has its own snapshots.

`restore_system` runs with the server stopped, on a data root that has no instances yet (a
fresh install): it fetches the snapshot into a work folder, checks its paths, and puts the
database, secrets, install id, project folders and stores in place. It then finds each
instance's latest snapshot in the same repository and leaves that list for the server
(`backup/recovery.py`), which restores them at its next start; instances without a snapshot
there are reported with the command that restores them.
"""

from __future__ import annotations

import contextlib
import secrets as tokens
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from stackhub import fsutil
from stackhub.adapters.restic import Node, Repository, Restic, Snapshot
from stackhub.backup.recovery import plan_instances, write_plan
from stackhub.config import Paths
from stackhub.errors import Conflict, Invalid, NotFound, StackHubError

STAGE = "_system"  # not an instance name (they start with a letter or digit)
DB_COPY = "stackhub.db"
TOP = ("/backups", "/backups/stage", f"/backups/stage/{STAGE}", "/secrets", "/install-id",
       "/instances", "/stores")
SYSTEM_TAGS = ["stackhub", "system"]


def copy_database(source: Path, dest: Path) -> None:
    """Copy a live SQLite database consistently (online backup API) into `dest` (0600)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src, \
            contextlib.closing(sqlite3.connect(dest)) as out:
        src.backup(out)
    dest.chmod(0o600)


def system_paths(paths: Paths) -> list[str]:
    """Return the data-root-relative paths a system snapshot holds (those that exist)."""
    found = [f"backups/stage/{STAGE}"]
    for name in ("secrets", "install-id", "instances", "stores"):
        if (paths.root / name).exists():
            found.append(name)
    return found


def check_system_paths(nodes: list[Node]) -> None:
    """Refuse a system snapshot with paths outside what `backup system` writes."""
    for node in nodes:
        path = node.path
        if not path.startswith("/") or any(p in ("", ".", "..") for p in path.split("/")[1:]):
            raise Invalid(f"the system snapshot holds a path StackHub will not restore: {path!r}")
        if path in TOP:
            continue
        if not any(path.startswith(top + "/") for top in TOP[2:] if top != "/install-id"):
            raise Invalid(f"the system snapshot holds {path!r}, outside StackHub's own state: "
                          "refusing to restore it")
        if node.type not in ("dir", "file", "symlink") or (
                node.type == "symlink" and not path.startswith("/stores/")):
            raise Invalid(f"the system snapshot holds {path!r} as a {node.type}")


@dataclass
class SystemRestore:
    """What `restore_system` brought back."""

    snapshot: str
    time: str
    instances: list[str] = field(default_factory=list)
    stores: list[str] = field(default_factory=list)
    restoring: dict[str, str] = field(default_factory=dict)  # instance -> snapshot id
    by_hand: dict[str, str] = field(default_factory=dict)  # instance -> the command to run


def _has_instances(db: Path) -> bool:
    if not db.is_file():
        return False
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        try:
            return bool(conn.execute("SELECT COUNT(*) FROM instances").fetchone()[0] > 0)
        except sqlite3.Error:
            return False


async def latest_system(restic: Restic, repo: Repository, ref: str) -> Snapshot:
    """Return the system snapshot `ref` (an id prefix, or `latest`)."""
    found = await restic.snapshots(repo, tags=SYSTEM_TAGS)
    if not found:
        raise NotFound(f"repository {repo.url} holds no StackHub system backup")
    if ref == "latest":
        return max(found, key=lambda s: s.time)
    matches = [s for s in found if s.id.startswith(ref.lower())]
    if len(matches) != 1:
        raise NotFound(f"no single system snapshot {ref} in {repo.url}")
    return matches[0]


async def restore_system(paths: Paths, restic: Restic, repo: Repository, *, ref: str = "latest",
                         force: bool = False) -> SystemRestore:
    """Bring StackHub's own state back from a system snapshot (the server must be stopped)."""
    if _has_instances(paths.db) and not force:
        raise Conflict(f"{paths.root} already has instances: restore-system is for a fresh "
                       "install (give --force to replace this installation's state)")
    snap = await latest_system(restic, repo, ref)
    check_system_paths(await restic.ls(repo, snap.id))
    work = paths.root / "backups" / "work" / f"system-{tokens.token_hex(6)}"
    work.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    await restic.restore(repo, snap.id, work)
    try:
        copy = work / "backups" / "stage" / STAGE / DB_COPY
        if not copy.is_file():
            raise Invalid(f"system snapshot {snap.short_id} holds no database")
        report = SystemRestore(snapshot=snap.id, time=snap.time)
        for suffix in ("", "-wal", "-shm"):
            stale = Path(f"{paths.db}{suffix}")
            if stale.exists():
                stale.unlink()
        copy.replace(paths.db)
        paths.db.chmod(0o600)
        secrets = work / "secrets"
        if secrets.is_dir():
            paths.secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
            for entry in sorted(secrets.iterdir()):
                target = paths.secrets / entry.name
                if target.is_dir() and not target.is_symlink():
                    fsutil.remove_tree_inside(target, paths.secrets)
                elif target.exists() or target.is_symlink():
                    target.unlink()
                entry.replace(target)
        if (work / "install-id").is_file():
            (work / "install-id").replace(paths.root / "install-id")
        for folder, names in (("instances", report.instances), ("stores", report.stores)):
            source = work / folder
            if not source.is_dir():
                continue
            (paths.root / folder).mkdir(parents=True, exist_ok=True)
            for entry in sorted(source.iterdir()):
                target = paths.root / folder / entry.name
                if target.exists() and force and target.is_dir():
                    fsutil.remove_tree_inside(target, target.parent)
                if not target.exists():
                    entry.replace(target)
                    names.append(entry.name)
    finally:
        with contextlib.suppress(OSError, Invalid):
            fsutil.remove_tree_inside(work, work.parent)
    try:
        plan = await plan_instances(restic, repo, paths.db, report.instances)
    except StackHubError as err:  # the state is back: the instances are restored by hand
        report.by_hand = {name: f"stackhub backup restore {name} latest --yes  ({err.message})"
                          for name in report.instances}
        return report
    write_plan(paths.root, plan)
    report.restoring, report.by_hand = plan.restores, plan.by_hand
    return report
