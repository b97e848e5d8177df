"""Sync stores in the background: every store whose last attempt is older than the interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from stackhub.catalog.service import Catalog
from stackhub.errors import StoreError

log = logging.getLogger("stackhub.catalog")
DEFAULT_INTERVAL = 15 * 60.0
CHECK_EVERY = 60.0


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


async def run(catalog: Catalog, interval: float) -> None:
    """Loop forever: sync due stores, then wait."""
    while True:
        try:
            await asyncio.to_thread(sync_due, catalog, interval)
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
