"""Sync stores in the background: every store whose last attempt is older than the interval."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from stackhub.catalog.service import Catalog
from stackhub.errors import StoreError

log = logging.getLogger("stackhub.catalog")
DEFAULT_INTERVAL = 15 * 60.0
CHECK_EVERY = 60.0
T = TypeVar("T")


def sync_interval() -> float:
    """Return the sync interval in seconds from STACKHUB_STORE_SYNC_INTERVAL (0 disables)."""
    text = os.environ.get("STACKHUB_STORE_SYNC_INTERVAL", "").strip()
    if not text:
        return DEFAULT_INTERVAL
    try:
        value = float(text)
    except ValueError:
        log.warning("STACKHUB_STORE_SYNC_INTERVAL=%r is not a number; using %.0f s", text,
                    DEFAULT_INTERVAL)
        return DEFAULT_INTERVAL
    return max(value, 0.0)


def sync_due(catalog: Catalog, interval: float) -> list[str]:
    """Sync the stores that are due; return their names (failures are logged and recorded)."""
    names = catalog.due(interval)
    for name in names:
        try:
            result = catalog.sync_store(name)
            if result.updates:
                log.info("store %s: updates available for %s", name, ", ".join(result.updates))
        except StoreError as err:
            log.warning("%s", err.message)
    return names


async def in_daemon_thread(fn: Callable[[], T]) -> T:
    """Run `fn` in a daemon thread, so a slow git or download never holds up shutdown."""
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def work() -> None:
        if not done.set_running_or_notify_cancel():
            return
        try:
            done.set_result(fn())
        except BaseException as err:  # handed to the awaiting task
            done.set_exception(err)

    threading.Thread(target=work, name="store-sync", daemon=True).start()
    return await asyncio.wrap_future(done)


async def run(catalog: Catalog, interval: float) -> None:
    """Loop forever: sync due stores, then wait."""
    while True:
        try:
            await in_daemon_thread(lambda: sync_due(catalog, interval))
        except Exception:  # a scheduler must outlive any one bad sync
            log.exception("scheduled store sync failed")
        await asyncio.sleep(min(interval, CHECK_EVERY))


def start(catalog: Catalog, interval: float | None = None) -> asyncio.Task[None] | None:
    """Start the background sync task, unless the interval is 0."""
    interval = sync_interval() if interval is None else interval
    if interval <= 0:
        return None
    return asyncio.create_task(run(catalog, interval), name="store-sync")


async def stop(task: asyncio.Task[None] | None) -> None:
    """Stop the background sync task."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
