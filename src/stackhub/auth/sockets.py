"""Track open websockets by session, token and user, to close them when access ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from stackhub.auth.models import Principal

log = logging.getLogger("stackhub.auth")
Closer = Callable[[int, str], Awaitable[None]]


@dataclass(eq=False)
class Entry:
    """One open socket: who holds it and how to close it."""

    principal: Principal
    close: Closer


class SocketRegistry:
    """Open websockets; closing is scheduled on their event loop, from any thread."""

    def __init__(self) -> None:
        """Start empty."""
        self._entries: set[Entry] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, principal: Principal, close: Closer) -> Entry:
        """Register a socket (from the event loop serving it)."""
        entry = Entry(principal, close)
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._entries.add(entry)
        return entry

    def remove(self, entry: Entry) -> None:
        """Forget a socket (it closed)."""
        with self._lock:
            self._entries.discard(entry)

    def __len__(self) -> int:
        """Count open sockets."""
        return len(self._entries)

    def _spawn(self, entry: Entry, reason: str) -> None:
        async def close() -> None:
            with contextlib.suppress(Exception):
                await entry.close(4401, reason)

        task = asyncio.get_running_loop().create_task(close())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _close(self, pick: Callable[[Principal], bool], reason: str) -> int:
        with self._lock:
            chosen = [e for e in self._entries if pick(e.principal)]
            self._entries.difference_update(chosen)
            loop = self._loop
        if not chosen or loop is None or loop.is_closed():
            return 0
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for entry in chosen:
            if running is loop:
                self._spawn(entry, reason)
            else:
                loop.call_soon_threadsafe(self._spawn, entry, reason)
        log.info("closed %d websocket(s): %s", len(chosen), reason)
        return len(chosen)

    def close_sessions(self, session_ids: list[str], reason: str = "signed out") -> int:
        """Close the sockets opened with these sessions."""
        wanted = set(session_ids)
        return self._close(lambda p: p.session_id in wanted, reason)

    def close_token(self, token_id: str, reason: str = "token revoked") -> int:
        """Close the sockets opened with this API token."""
        return self._close(lambda p: p.token_id == token_id, reason)

    def close_user(self, username: str, reason: str = "access revoked") -> int:
        """Close every socket of a user."""
        return self._close(lambda p: p.has_account and p.name == username, reason)
