"""Fields of the instance views that other domains own, filled in for many views at once."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

from stackhub.apps.models import InstanceRead

Fill = Callable[[Sequence[InstanceRead]], None]


class LastBackup(Protocol):
    """An instance's last backups as the backup domain keeps them (backup/schedules.py)."""

    @property
    def last_success_at(self) -> datetime | None:
        """When the last good backup was taken."""


def last_backups(lasts: Callable[[], Mapping[str, LastBackup]]) -> Fill:
    """Return a filler of `last_backup_at` reading every instance's last backup in one query."""

    def fill(views: Sequence[InstanceRead]) -> None:
        found = lasts()
        for view in views:
            last = found.get(view.name)
            good = last.last_success_at if last else None
            view.last_backup_at = None if good is None else \
                good.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    return fill
