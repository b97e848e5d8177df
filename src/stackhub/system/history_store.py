"""The metrics rollups in SQLite: table ``metric_rollups``, one row per series and bucket.

A row holds min, max, sum and count of every metric (``<metric>_min`` ...), so rows merge
exactly: a minute written twice (a restart within it) or the minutes of an hour are folded in
with one upsert each. Buckets are 60 s (kept 48 h) and 3600 s (kept 90 days).
"""

from __future__ import annotations

from stackhub.state.db import Database
from stackhub.system.history import HOUR, METRICS, Agg, SeriesKey

COLUMNS = [f"{m}_{part}" for m in METRICS for part in ("min", "max", "sum", "n")]
# the column names are the METRICS constants, never input
_INSERT = (
    f"INSERT INTO metric_rollups (scope, name, resolution, at, {', '.join(COLUMNS)}) "  # noqa: S608
    f"VALUES (?, ?, ?, ?, {', '.join('?' for _ in COLUMNS)}) "
    "ON CONFLICT (scope, name, resolution, at) DO UPDATE SET " + ", ".join(
        f"{m}_min = min(coalesce({m}_min, excluded.{m}_min), "
        f"coalesce(excluded.{m}_min, {m}_min)), "
        f"{m}_max = max(coalesce({m}_max, excluded.{m}_max), "
        f"coalesce(excluded.{m}_max, {m}_max)), "
        f"{m}_sum = {m}_sum + excluded.{m}_sum, {m}_n = {m}_n + excluded.{m}_n"
        for m in METRICS))
_FOLD = {"min": "min", "max": "max", "sum": "sum", "n": "sum"}
# rows merged into steps by SQLite itself: a 24 h chart reads 1440 rows but builds 360 points
_SELECT = (
    "SELECT (at / ?) * ? AS bucket, "  # noqa: S608
    + ", ".join(f"{_FOLD[c.rsplit('_', 1)[1]]}({c})" for c in COLUMNS)
    + " FROM metric_rollups WHERE scope = ? AND name = ? AND resolution = ? AND at >= ? "
    "AND at < ? GROUP BY bucket ORDER BY bucket")


def _row(key: SeriesKey, resolution: int, at: int, agg: Agg) -> tuple[object, ...]:
    values: list[object] = [key[0], key[1], resolution, at]
    for i in range(len(METRICS)):
        values += [agg.mins[i], agg.maxs[i], agg.sums[i], agg.counts[i]]
    return tuple(values)


class HistoryStore:
    """Write and read rollups (the `Store` of history.MetricsHistory)."""

    def __init__(self, db: Database) -> None:
        """Use StackHub's database."""
        self.db = db

    def write(self, minutes: dict[tuple[SeriesKey, int], Agg],
              prune_before: dict[int, int] | None) -> None:
        """Write minutes, merge them into their hours, and prune, in one transaction."""
        hours: dict[tuple[SeriesKey, int], Agg] = {}
        for (key, at), agg in minutes.items():
            hour = hours.get((key, at // HOUR * HOUR))
            if hour is None:
                hours[(key, at // HOUR * HOUR)] = agg.copy()
            else:
                hour.merge(agg)
        with self.db.transaction() as conn:
            conn.executemany(_INSERT, [_row(key, 60, at, agg)
                                       for (key, at), agg in minutes.items()])
            conn.executemany(_INSERT, [_row(key, HOUR, at, agg)
                                       for (key, at), agg in hours.items()])
            for resolution, before in (prune_before or {}).items():
                conn.execute("DELETE FROM metric_rollups WHERE resolution = ? AND at < ?",
                             (resolution, before))

    def rows(self, key: SeriesKey, resolution: int, since: int,
             until: int | None = None, step: int | None = None) -> list[tuple[int, Agg]]:
        """Return a series' rows at a resolution from `since` (to `until`), oldest first;
        with `step`, rows merged into buckets of that many seconds."""
        size = step or resolution
        found = self.db.query(_SELECT, (size, size, key[0], key[1], resolution, since,
                                        until if until is not None else 2**62))
        out: list[tuple[int, Agg]] = []
        for row in found:
            agg = Agg()
            for i in range(len(METRICS)):
                base = 1 + 4 * i
                agg.mins[i], agg.maxs[i] = row[base], row[base + 1]
                agg.sums[i], agg.counts[i] = float(row[base + 2] or 0), int(row[base + 3] or 0)
            out.append((int(row[0]), agg))
        return out

    def count(self) -> dict[int, int]:
        """Return how many rows each resolution holds."""
        return {int(r[0]): int(r[1]) for r in self.db.query(
            "SELECT resolution, count(*) FROM metric_rollups GROUP BY resolution")}
