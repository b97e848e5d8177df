"""A repository's in-process lock: many reading restic runs at once, or one changing run.

restic itself lets reads (`restore`, `ls`, `snapshots`, `dump`, `find`) share a repository
and gives `backup`, `forget`, `prune` and `check` what they need; StackHub's own lock is
stricter (every run that is not a plain read is alone), so two of its runs never meet in
restic's lock files. Waiters are served in arrival order: a changing run waiting blocks the
reads that come after it, so a steady stream of reads never starves it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator


class RepoLock:
    """Shared (reads) or exclusive (everything else) holding of one repository."""

    def __init__(self) -> None:
        """Start free."""
        self._readers = 0
        self._writer = False
        self._waiting: deque[tuple[bool, asyncio.Future[None]]] = deque()

    @property
    def held(self) -> tuple[int, bool]:
        """(reads holding it, whether a changing run holds it), for tests and logs."""
        return self._readers, self._writer

    def _free_for(self, exclusive: bool) -> bool:
        return not self._writer and (not exclusive or self._readers == 0)

    def _take(self, exclusive: bool) -> None:
        if exclusive:
            self._writer = True
        else:
            self._readers += 1

    def _release(self, exclusive: bool) -> None:
        if exclusive:
            self._writer = False
        else:
            self._readers -= 1
        self._grant()

    def _grant(self) -> None:
        """Wake waiters in order while the lock allows them (several reads, one writer)."""
        while self._waiting:
            exclusive, waiter = self._waiting[0]
            if waiter.done():  # cancelled while waiting
                self._waiting.popleft()
                continue
            if not self._free_for(exclusive):
                return
            self._waiting.popleft()
            self._take(exclusive)
            waiter.set_result(None)
            if exclusive:
                return

    async def _acquire(self, exclusive: bool) -> None:
        if not self._waiting and self._free_for(exclusive):
            self._take(exclusive)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((exclusive, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(exclusive)  # granted just as it was cancelled: give it back
            else:
                self._grant()  # it may have blocked others behind it
            raise

    @contextlib.asynccontextmanager
    async def hold(self, *, shared: bool) -> AsyncIterator[None]:
        """Hold the repository for one restic run (`shared` for plain reads)."""
        await self._acquire(not shared)
        try:
            yield
        finally:
            self._release(not shared)
