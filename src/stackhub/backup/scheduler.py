"""The in-process backup scheduler: due scheduled backups, then due repository checks.

`tick()` does one round at the clock's current time and is what tests drive (with a fake
clock, never sleeping); `run()` calls it about once a minute until cancelled. Scheduled
backups run one after another, so a busy night never starts them all at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from stackhub.backup.schedules import due
from stackhub.backup.service import BackupService
from stackhub.errors import StackHubError

log = logging.getLogger(__name__)
CHECK_SUBSET = "5%"


class BackupScheduler:
    """Start scheduled backups (and their retention) and periodic checks when they are due."""

    def __init__(self, service: BackupService, *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Use the service's clock, time zone and store; `sleep` is injectable for tests."""
        self.service = service
        self.sleep = sleep

    def due_backups(self, now: datetime | None = None) -> list[str]:
        """Name the instances whose scheduled backup (own or default) is due now."""
        store, moment = self.service.store, now or self.service.clock()
        lasts = store.lasts()
        return [name for name, s in sorted(self.service.applying().items())
                if due(s, lasts.get(name), moment, self.service.tz)]

    async def tick(self) -> dict[str, bool]:
        """Run every due backup, then every due check; return what ran and whether it worked."""
        ran: dict[str, bool] = {}
        for name in self.due_backups():
            ran[f"backup:{name}"] = await self.service.run_scheduled(name)
        if self.service.system_due():
            ran["backup:@system"] = await self.service.run_scheduled_system()
        for repo in self.service.repositories():
            if self.service.check_due(repo.name):
                try:
                    result = await self.service.check_repository(repo.name, subset=CHECK_SUBSET)
                    ran[f"check:{repo.name}"] = result.ok
                except StackHubError as err:  # unreachable: recorded, tried again next time
                    self.service.store.checked(repo.name, False, err.message,
                                               self.service.clock())
                    ran[f"check:{repo.name}"] = False
        return ran

    def start(self) -> asyncio.Task[None]:
        """Run `run()` in the background (the server's lifespan)."""
        return asyncio.create_task(self.run(), name="backup-scheduler")

    @staticmethod
    async def stop(task: asyncio.Task[None]) -> None:
        """Cancel the background rounds and wait for them to end."""
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def run(self) -> None:
        """Tick about once a minute (at the start of each minute) until cancelled."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the backup scheduler's round failed")
            now = self.service.clock()
            await self.sleep(max(1.0, 60.0 - now.second - now.microsecond / 1e6))
