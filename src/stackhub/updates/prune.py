"""Images an update replaced: kept 7 days (a rollback within them re-tags them), then pruned.

A successful update records every old image id whose tag now points elsewhere (table
`replaced_images`, with the time). `ImagePruner.prune()` (run periodically by the server)
removes the expired ones unless a container (of any instance, or not StackHub's) uses them;
an image that still carries its old tag loses only that tag, and one the user tagged under
another name is left alone. `decide` is the pure rule, tested with a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from stackhub.adapters.engine import InventoryEngine
from stackhub.errors import NotFound, StackHubError
from stackhub.state.db import Database

log = logging.getLogger(__name__)
KEEP = timedelta(days=7)
PRUNE_EVERY = 3600.0


@dataclass(frozen=True)
class Replaced:
    """One image an update replaced."""

    image_id: str
    ref: str
    instance: str
    replaced_at: datetime


def decide(rows: list[Replaced], in_use: set[str], now: datetime,
           keep: timedelta = KEEP) -> list[Replaced]:
    """Return the replaced images to remove now: older than `keep` and used by no container."""
    return [row for row in rows if now - row.replaced_at >= keep and row.image_id not in in_use]


def _parse(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ImagePruner:
    """Record replaced images; give them back to a rollback; remove the expired ones."""

    def __init__(self, db: Database, engine: InventoryEngine, *,
                 clock: Callable[[], datetime] | None = None) -> None:
        """Keep the database and engine; `clock` (aware UTC now) is injectable for tests."""
        self.db = db
        self.engine = engine
        self.clock = clock or (lambda: datetime.now(UTC))

    def record(self, instance: str, old: dict[str, str], new: dict[str, str]) -> list[str]:
        """Remember each old image id whose reference now names another image."""
        moment = self.clock().isoformat(timespec="seconds")
        replaced = [(image_id, ref) for ref, image_id in old.items() if new.get(ref) != image_id]
        with self.db.transaction() as conn:
            for image_id, ref in replaced:
                conn.execute("INSERT OR REPLACE INTO replaced_images (image_id, ref, instance, "
                             "replaced_at, pruned_at) VALUES (?,?,?,?,NULL)",
                             (image_id, ref, instance, moment))
        return [image_id for image_id, _ref in replaced]

    def pending(self, instance: str | None = None) -> list[Replaced]:
        """The replaced images not pruned yet (of one instance, or all), oldest first."""
        sql = "SELECT * FROM replaced_images WHERE pruned_at IS NULL"
        params: tuple[object, ...] = ()
        if instance is not None:
            sql, params = sql + " AND instance = ?", (instance,)
        rows = self.db.query(sql + " ORDER BY replaced_at", params)
        return [Replaced(image_id=r["image_id"], ref=r["ref"], instance=r["instance"],
                         replaced_at=_parse(r["replaced_at"])) for r in rows]

    def kept_for(self, instance: str) -> dict[str, str]:
        """The images the instance's last update replaced, still within 7 days (ref -> id)."""
        now = self.clock()
        kept: dict[str, str] = {}
        for row in self.pending(instance):  # oldest first: the newest replacement wins
            if now - row.replaced_at < KEEP:
                kept[row.ref] = row.image_id
        return kept

    def _remove(self, row: Replaced) -> str:
        """Remove one image (or only its old tag); return what happened."""
        image = next((i for i in self.engine.all_images() if i.id == row.image_id), None)
        if image is None:
            return "gone"
        if not image.tags:
            self.engine.remove_image(row.image_id)
            return "removed"
        if row.ref in image.tags:
            self.engine.remove_image(row.ref)  # only this tag goes if it has others
            return "untagged" if len(image.tags) > 1 else "removed"
        return "kept: tagged under another name"

    def prune(self) -> dict[str, str]:
        """Remove every expired replaced image no container uses; return id -> outcome."""
        rows = self.pending()
        if not rows:
            return {}
        in_use = {c.image_id for c in self.engine.all_containers()}
        done: dict[str, str] = {}
        for row in decide(rows, in_use, self.clock()):
            try:
                outcome = self._remove(row)
            except NotFound:
                outcome = "gone"
            except StackHubError as err:  # in use meanwhile, or the engine went away
                log.warning("could not prune image %s (%s): %s", row.image_id[:19], row.ref,
                            err.message)
                continue
            done[row.image_id] = outcome
            with self.db.transaction() as conn:
                conn.execute("UPDATE replaced_images SET pruned_at = ? WHERE image_id = ? AND "
                             "instance = ?", (self.clock().isoformat(timespec="seconds"),
                                              row.image_id, row.instance))
        if done:
            log.info("pruned images replaced by updates: %s", done)
        return done


def prune_interval() -> float:
    """Seconds between prune rounds: STACKHUB_IMAGE_PRUNE_INTERVAL (0: never), else an hour."""
    try:
        return max(float(os.environ.get("STACKHUB_IMAGE_PRUNE_INTERVAL", PRUNE_EVERY)), 0.0)
    except ValueError:
        return PRUNE_EVERY


async def _rounds(pruner: ImagePruner, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(pruner.prune)
        except StackHubError as err:
            log.warning("pruning replaced images failed: %s", err.message)


def start_pruning(pruner: ImagePruner) -> asyncio.Task[None] | None:
    """Prune expired replaced images periodically in the background (hourly by default)."""
    interval = prune_interval()
    if interval <= 0:
        return None
    return asyncio.get_running_loop().create_task(_rounds(pruner, interval),
                                                  name="image-pruning")


async def stop_pruning(task: asyncio.Task[None] | None) -> None:
    """Stop the periodic pruning."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
