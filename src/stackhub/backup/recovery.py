"""After `restore-system`: restore every instance from its latest snapshot when the server starts.

`restore-system` runs with the server stopped, so it cannot run restores (they are operations
on the runner, with the engine). It writes `backups/recovery.json` instead: the repository (by
its name in the restored database) and, per instance, the id of its latest snapshot there.
The first server start (`start`) restores them one after the other, each a normal `restore`
operation (journaled, crash-safe, in `stackhub op list`), and removes each entry once its
restore has ended, so a server killed during one resumes it at the next start. The plan counts
each instance's attempts (written before each one starts, so a kill counts): after `ATTEMPTS`
interrupted ones it is not tried again. An instance whose restore is refused (e.g. risky
options to accept), fails or was interrupted `ATTEMPTS` times is left `missing`, with the
reason in the log, the audit log and a console notification (`recovery_failed`) naming the
command that brings it back by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackhub import fsutil
from stackhub.adapters.restic import Repository, Restic
from stackhub.apps.models import Accepted
from stackhub.backup.models import RestoreRequest
from stackhub.errors import EngineUnavailable, StackHubError

log = logging.getLogger(__name__)
PLAN = "recovery.json"
RETRY = 1.0
ATTEMPTS = 3
"""Restores of one instance begun (each interrupted) before the server stops trying it."""


@dataclass
class InstancePlan:
    """What restore-system found for the restored instances in the repository it read."""

    repository: str | None  # its name in the restored database (None: not recorded there)
    restores: dict[str, str] = field(default_factory=dict)  # instance -> snapshot id
    by_hand: dict[str, str] = field(default_factory=dict)  # instance -> why, and what to run


def plan_path(root: Path) -> Path:
    """Return where restore-system leaves the instances' restores for the server."""
    return root / "backups" / PLAN


def recorded_repository(db: Path, repo: Repository) -> str | None:
    """Return the restored database's name for the repository restore-system read.

    The same URL; else, for a local path, StackHub's own local repository (`local`, the
    default unless another was made the default) when its recorded folder holds no repository
    on this box (the old box's disk mounted elsewhere): it is
    pointed at the path given.
    """
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        rows = conn.execute("SELECT name, url, kind, is_default FROM backup_repositories"
                            ).fetchall()
        for name, url, _kind, _default in rows:
            if url == repo.url:
                return str(name)
        if not repo.url.startswith("/"):
            return None
        for name, url, kind, _default in rows:  # StackHub's own: named `local`, default or not
            if name == "local" and kind == "local" and not (Path(url) / "config").is_file():
                conn.execute("UPDATE backup_repositories SET url = ? WHERE name = ?",
                             (repo.url, name))
                return str(name)
    return None


async def plan_instances(restic: Restic, repo: Repository, db: Path,
                         instances: list[str]) -> InstancePlan:
    """Find each instance's latest snapshot in `repo`; say how to restore the others."""
    name = recorded_repository(db, repo)
    plan = InstancePlan(repository=name)
    latest: dict[str, tuple[str, str]] = {}
    for snap in await restic.snapshots(repo, tags=["stackhub"]):
        owner = snap.tag("instance")
        if owner and (owner not in latest or snap.time > latest[owner][0]):
            latest[owner] = (snap.time, snap.id)
    for instance in instances:
        if instance in latest and name is not None:
            plan.restores[instance] = latest[instance][1]
        elif instance in latest:
            plan.by_hand[instance] = (
                f"stackhub backup repo add recovered {repo.url} --password-file KIT && "
                f"stackhub backup restore {instance} latest --repo recovered --yes")
        else:
            plan.by_hand[instance] = (f"stackhub backup restore {instance} latest --repo REPO "
                                      "--yes  (no backup of it in this repository)")
    return plan


def write_plan(root: Path, plan: InstancePlan) -> None:
    """Leave the restores for the server's next start (nothing when there are none)."""
    if plan.restores and plan.repository is not None:
        fsutil.write_atomic(plan_path(root), json.dumps(
            {"repository": plan.repository, "restores": plan.restores}), mode=0o600)


Restore = Callable[[str, str, RestoreRequest], Awaitable[Accepted]]
Settle = Callable[[str], Awaitable[None]]
Alert = Callable[[str, str, bool, dict[str, Any]], None]
Outcome = Callable[[str], tuple[str, str | None] | None]
"""An operation's state and error by id (None: no such operation)."""
Report = Callable[[str, str, str], None]
"""Raise the console notification of an instance not restored: (instance, why, command)."""


def by_hand(instance: str, snapshot: str, repository: str, digest: str | None = None) -> str:
    """Return the command that restores an instance by hand (accepting risks, if any)."""
    accept = f" --accept-risks {digest}" if digest else ""
    return (f"stackhub backup restore {instance} {snapshot[:12]} --repo {repository} "
            f"--yes{accept}")


def _save(path: Path, repository: str, restores: dict[str, str],
          operations: dict[str, str], attempts: dict[str, int]) -> None:
    if restores:
        fsutil.write_atomic(path, json.dumps({
            "repository": repository, "restores": restores,
            "operations": {k: v for k, v in operations.items() if k in restores},
            "attempts": {k: v for k, v in attempts.items() if k in restores}}), mode=0o600)
    else:
        path.unlink(missing_ok=True)


async def _start(instance: str, snapshot: str, repository: str, restore: Restore,
                 count: Callable[[int], None]) -> Accepted:
    """Start one restore, waiting for the engine at boot (it may come after StackHub).

    `count(+1)` is called (and saved) before each try and `count(-1)` after a try the engine
    refused, so a server killed while it waits for the engine spends no attempt.
    """
    while True:
        count(+1)
        try:
            return await restore(instance, snapshot, RestoreRequest(repository=repository))
        except EngineUnavailable:
            count(-1)
            await asyncio.sleep(RETRY)


async def run_plan(root: Path, restore: Restore, settle: Settle, alert: Alert, *,
                   outcome: Outcome = lambda _op: None,
                   report: Report = lambda *_: None) -> list[str]:
    """Restore each instance of the plan, one at a time; return those restored.

    An entry stays in the plan, with its operation's id, until that restore has ended, so a
    server killed during one resumes it at its next start (the interrupted operation is run
    again) or, if it had ended, reports it. Each attempt is counted in the plan before it
    begins; an instance whose `ATTEMPTS` attempts were all interrupted is not tried again.
    A restore refused, failed or given up is logged, audited and raised as a console
    notification naming the command that restores it by hand.
    """
    path = plan_path(root)
    try:
        plan = json.loads(path.read_text())
        repository, restores = str(plan["repository"]), dict(plan["restores"])
        operations = {str(k): str(v) for k, v in dict(plan.get("operations") or {}).items()}
        attempts = {str(k): int(v) for k, v in dict(plan.get("attempts") or {}).items()}
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("ignoring an unreadable %s: %s", path, err)
        return []

    def failed(instance: str, snapshot: str, why: str, digest: str | None = None) -> None:
        command = by_hand(instance, snapshot, repository, digest)
        log.warning("restore-system: %s was not restored (%s); run `%s`", instance, why,
                    command)
        alert("backup.recovery", instance, False, {"error": why, "command": command})
        report(instance, why, command)

    restored: list[str] = []
    for instance, snapshot in list(restores.items()):
        snapshot = str(snapshot)
        earlier = outcome(operations[instance]) if instance in operations else None
        if earlier is not None and earlier[0] == "running":
            await settle(instance)  # still running in this process: wait for its end
            earlier = outcome(operations[instance])
        if earlier is not None and earlier[0] == "succeeded":
            restored.append(instance)
        elif earlier is not None and earlier[0] == "failed":
            failed(instance, snapshot, earlier[1] or "the restore failed")
        elif (tries := attempts.get(instance, int(instance in operations))) >= ATTEMPTS:
            failed(instance, snapshot, f"tried {tries} times, interrupted each time")
        else:  # never begun, or interrupted by a crash: (again) from the start
            attempts[instance] = tries  # (a plan without counts: 1 if it had begun)

            def count(step: int, instance: str = instance) -> None:
                attempts[instance] += step
                _save(path, repository, restores, operations, attempts)

            try:
                accepted = await _start(instance, snapshot, repository, restore, count)
            except StackHubError as err:
                failed(instance, snapshot, err.message, err.details.get("digest"))
            else:
                operations[instance] = accepted.operation.id
                _save(path, repository, restores, operations, attempts)
                await settle(instance)
                ended = outcome(accepted.operation.id)
                if ended is None or ended[0] == "succeeded":
                    restored.append(instance)
                else:
                    failed(instance, snapshot, ended[1] or f"the restore ended {ended[0]}")
        del restores[instance]
        _save(path, repository, restores, operations, attempts)
    return restored
