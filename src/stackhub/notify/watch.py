"""Periodic checks for conditions without an event: updates found, backups failed or missing,
certificates near expiry, the data disk above a threshold, apps unhealthy for a while.

Each round raises a notice per condition found and resolves the open ones no longer found.
The sources are plain callables (wired in services.py), so the tests give lists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from stackhub.apps.models import InstanceRead
from stackhub.backup.models import BackupHealth, BackupStatusRead, RepositoryCheckRead
from stackhub.notify.service import Kind, Notice, NotifyService, Severity
from stackhub.operations.models import InstanceStatus
from stackhub.proxy.models import DomainRead

log = logging.getLogger(__name__)
UNHEALTHY = {InstanceStatus.UNHEALTHY, InstanceStatus.PARTIAL}


class Usage(NamedTuple):
    """Disk usage in bytes (shutil.disk_usage's shape)."""

    total: int
    used: int
    free: int


def hours_since(stamp: str | None) -> int:
    """Return whole hours since an ISO time (at least 24; 24 when there is none)."""
    if not stamp:
        return 24
    since = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return max(24, int((datetime.now(UTC) - since).total_seconds() // 3600))


def _float_env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        log.warning("%s is not a number; using %s", name, default)
        return default


def recovery_notice(service: NotifyService) -> Callable[[str, str, str], None]:
    """Return what raises the notification of an instance restore-system did not bring back
    (at the server's start): the instance, why, and the command that restores it by hand."""
    def report(instance: str, error: str, command: str) -> None:
        service.notify(Notice(Kind.RECOVERY_FAILED, f"recovery_failed:{instance}",
                              {"instance": instance, "error": error[:500], "command": command},
                              f"/apps/{instance}", Severity.ERROR, instance=instance))

    return report


@dataclass
class WatchSettings:
    """Thresholds and the round interval (environment: STACKHUB_NOTIFY_*)."""

    interval: float = 60.0
    disk_percent: float = 90.0
    unhealthy_after: float = 300.0

    @classmethod
    def from_env(cls) -> WatchSettings:
        """Read STACKHUB_NOTIFY_INTERVAL, _DISK_PERCENT and _UNHEALTHY_AFTER (seconds)."""
        return cls(interval=max(0.2, _float_env("STACKHUB_NOTIFY_INTERVAL", 60.0)),
                   disk_percent=_float_env("STACKHUB_NOTIFY_DISK_PERCENT", 90.0),
                   unhealthy_after=_float_env("STACKHUB_NOTIFY_UNHEALTHY_AFTER", 300.0))


@dataclass
class Watcher:
    """One round of checks (`tick`), and the background rounds."""

    service: NotifyService
    instances: Callable[[], list[InstanceRead]]
    backups: Callable[[], list[BackupStatusRead]]
    domains: Callable[[], list[DomainRead]]
    root: Path
    settings: WatchSettings = field(default_factory=WatchSettings)
    clock: Callable[[], float] = time.monotonic
    usage: Callable[[Path], Usage] = lambda p: Usage(*shutil.disk_usage(p))
    bad_since: dict[str, float] = field(default_factory=dict)
    checks: Callable[[], list[RepositoryCheckRead]] = list
    system_backup: Callable[[], BackupStatusRead | None] = lambda: None

    def tick(self) -> None:
        """Check everything once (blocking: run it in a thread)."""
        for check in (self.check_instances, self.check_backups, self.check_system_backup,
                      self.check_repositories, self.check_domains, self.check_disk):
            try:
                check()
            except Exception:  # one source failing never stops the others
                log.exception("notification check %s failed", check.__name__)

    def check_instances(self) -> None:
        """Updates available, and apps unhealthy for longer than `unhealthy_after`."""
        updates: set[str] = set()
        unhealthy: set[str] = set()
        moment = self.clock()
        seen = set()
        for inst in self.instances():
            seen.add(inst.name)
            if inst.update_available:
                key = f"update:{inst.name}"
                updates.add(key)
                self.service.notify(Notice(
                    Kind.UPDATE_AVAILABLE, key, {"instance": inst.name,
                                                 "version": inst.latest_version or ""},
                    f"/apps/{inst.name}", Severity.INFO, instance=inst.name, renotify=True))
            key = f"unhealthy:{inst.name}"
            if inst.status in UNHEALTHY:
                since = self.bad_since.setdefault(inst.name, moment)
                unhealthy.add(key)  # one already open stays open while it is still bad
                if moment - since >= self.settings.unhealthy_after:
                    self.service.notify(Notice(
                        Kind.APP_UNHEALTHY, key,
                        {"instance": inst.name, "status": inst.status.value,
                         "minutes": max(1, round((moment - since) / 60))},
                        f"/apps/{inst.name}", Severity.ERROR, instance=inst.name,
                        admin_only=False))
            elif inst.status is InstanceStatus.UNKNOWN:  # the engine is away: judge later
                unhealthy.add(key)
            else:
                self.bad_since.pop(inst.name, None)
        for name in set(self.bad_since) - seen:
            del self.bad_since[name]
        self.service.resolve_missing("update:", updates)
        self.service.resolve_missing("unhealthy:", unhealthy)

    def check_backups(self) -> None:
        """Instances whose latest backup failed, or whose scheduled backups are missing."""
        failed: set[str] = set()
        missing: set[str] = set()
        for status in self.backups():
            name = status.instance
            if status.health is BackupHealth.FAILED:
                failed.add(f"backup_failed:{name}")
                self.service.notify(Notice(
                    Kind.BACKUP_FAILED, f"backup_failed:{name}",
                    {"instance": name, "error": (status.last_error or "")[:500]}, "/backups",
                    Severity.ERROR, instance=name))
            elif status.health is BackupHealth.MISSING:
                missing.add(f"backup_missing:{name}")
                self.service.notify(Notice(
                    Kind.BACKUP_MISSING, f"backup_missing:{name}",
                    {"instance": name, "hours": hours_since(status.last_success_at)},
                    "/backups", Severity.WARNING, instance=name))
        self.service.resolve_missing("backup_failed:", failed)
        self.service.resolve_missing("backup_missing:", missing)

    def check_system_backup(self) -> None:
        """StackHub's own backup: the latest failed, or the scheduled ones are missing."""
        status = self.system_backup()
        health = status.health if status is not None else BackupHealth.NONE
        if status is not None and health is BackupHealth.FAILED:
            self.service.notify(Notice(
                Kind.SYSTEM_BACKUP_FAILED, "system_backup_failed",
                {"error": (status.last_error or "")[:500]}, "/backups", Severity.ERROR))
        else:
            self.service.resolve("system_backup_failed")
        if status is not None and health is BackupHealth.MISSING:
            self.service.notify(Notice(
                Kind.SYSTEM_BACKUP_MISSING, "system_backup_missing",
                {"hours": hours_since(status.last_success_at)}, "/backups", Severity.WARNING))
        else:
            self.service.resolve("system_backup_missing")

    def check_repositories(self) -> None:
        """Repositories whose last check (periodic or by hand) failed; the next good one
        resolves the notice."""
        bad: set[str] = set()
        for check in self.checks():
            if check.checked_at and not check.ok:
                key = f"backup_check:{check.repository}"
                bad.add(key)
                self.service.notify(Notice(
                    Kind.BACKUP_CHECK_FAILED, key,
                    {"repository": check.repository, "error": (check.error or "")[:500]},
                    "/backups", Severity.ERROR))
        self.service.resolve_missing("backup_check:", bad)

    def check_domains(self) -> None:
        """Certificates that expire within their warning window (renewals failing)."""
        expiring: set[str] = set()
        for domain in self.domains():
            if domain.warning and domain.expires_in_days is not None:
                key = f"certificate:{domain.name}"
                expiring.add(key)
                self.service.notify(Notice(
                    Kind.CERTIFICATE_EXPIRING, key,
                    {"domain": domain.name, "days": domain.expires_in_days,
                     "instance": domain.instance}, "/settings/domains", Severity.WARNING))
        self.service.resolve_missing("certificate:", expiring)

    def check_disk(self) -> None:
        """The disk holding the data root above `disk_percent` full."""
        usage = self.usage(self.root)
        percent = 100.0 * usage.used / max(1, usage.used + usage.free)  # as df counts it
        if percent >= self.settings.disk_percent:
            self.service.notify(Notice(
                Kind.DISK_FULL, "disk", {"path": str(self.root), "percent": int(percent),
                                         "threshold": int(self.settings.disk_percent)},
                "/containers", Severity.WARNING))
        elif percent < self.settings.disk_percent - 2:  # a little hysteresis
            self.service.resolve("disk")

    # -- background rounds ---------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        """Run rounds in the background (the server's lifespan)."""
        return asyncio.create_task(self.run(), name="notify-watch")

    @staticmethod
    async def stop(task: asyncio.Task[None]) -> None:
        """Cancel the rounds."""
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def run(self) -> None:
        """A round at once, then every `interval` seconds, until cancelled."""
        while True:
            try:
                await asyncio.to_thread(self.tick)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notification checks failed")
            await asyncio.sleep(self.settings.interval)
