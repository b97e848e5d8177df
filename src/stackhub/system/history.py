"""Metrics history: the last hour in memory, rolled up into SQLite, read back for charts.

Every sample (one per series, every 5 s) goes into a ring of the last hour and into the
aggregate of its minute (min, max, sum and count per metric, so means stay exact when merged).
Closed minutes are written at most once a minute, in one transaction, as 1-minute rows and
merged into their hour's row (`history_store.py`); 1-minute rows are kept 48 h, hourly rows
90 days. A chart query picks its source by range (the ring for 1 h, minute rows for 24 h, hour
rows beyond), adds what is still in memory, and merges points into at most MAX_POINTS steps.
Nothing here reads the host: the sampler (`history_sampler.py`) feeds `record`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

METRICS = ("cpu", "memory", "disk", "rx", "tx", "read", "write")
"""What a series holds: cpu in percent (host: of all cores; instance: of one core), memory and
disk in bytes, network (rx, tx) and block I/O (read, write) in bytes per second."""

Values = tuple[float | None, ...]
SeriesKey = tuple[str, str]  # (scope, name): ("host", "") or ("instance", <name>)
HOST: SeriesKey = ("host", "")

INTERVAL = 5.0
RING = 3600.0
MINUTE = 60
HOUR = 3600
KEEP = {MINUTE: 48 * 3600, HOUR: 90 * 86400}
RANGES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "90d": 90 * 86400}
MAX_POINTS = 360
FLUSH_EVERY = 60.0
PRUNE_EVERY = 3600.0


@dataclass
class Agg:
    """Min, max, sum and count of each metric over a stretch of time."""

    mins: list[float | None] = field(default_factory=lambda: [None] * len(METRICS))
    maxs: list[float | None] = field(default_factory=lambda: [None] * len(METRICS))
    sums: list[float] = field(default_factory=lambda: [0.0] * len(METRICS))
    counts: list[int] = field(default_factory=lambda: [0] * len(METRICS))

    @classmethod
    def of(cls, values: Values) -> Agg:
        """Aggregate one sample."""
        agg = cls()
        agg.add(values)
        return agg

    def add(self, values: Values) -> None:
        """Count one sample in (missing values are skipped, not zeros)."""
        for i, value in enumerate(values):
            if value is None:
                continue
            low, high = self.mins[i], self.maxs[i]
            self.mins[i] = value if low is None else min(low, value)
            self.maxs[i] = value if high is None else max(high, value)
            self.sums[i] += value
            self.counts[i] += 1

    def merge(self, other: Agg) -> None:
        """Fold another aggregate into this one."""
        for i in range(len(METRICS)):
            if not other.counts[i]:
                continue
            low, high = self.mins[i], self.maxs[i]
            other_low, other_high = other.mins[i], other.maxs[i]
            assert other_low is not None and other_high is not None
            self.mins[i] = other_low if low is None else min(low, other_low)
            self.maxs[i] = other_high if high is None else max(high, other_high)
            self.sums[i] += other.sums[i]
            self.counts[i] += other.counts[i]

    def copy(self) -> Agg:
        """Return an independent copy."""
        return Agg(list(self.mins), list(self.maxs), list(self.sums), list(self.counts))

    def mean(self, i: int) -> float | None:
        """Return the mean of metric `i`, None without samples."""
        return self.sums[i] / self.counts[i] if self.counts[i] else None


def step_for(range_name: str) -> tuple[int, int]:
    """Return (resolution of the source, step of the answer) in seconds for a range."""
    span = RANGES[range_name]
    resolution = 5 if range_name == "1h" else MINUTE if range_name == "24h" else HOUR
    return resolution, max(resolution, math.ceil(span / MAX_POINTS / resolution) * resolution)


@dataclass
class Chart:
    """A range of one series, merged into steps: times and per-metric mean, min and max."""

    resolution: int
    step: int
    at: list[int]
    aggs: list[Agg]


class Store(Protocol):
    """Where rollups are kept (history_store.HistoryStore; a fake in tests)."""

    def write(self, minutes: dict[tuple[SeriesKey, int], Agg],
              prune_before: dict[int, int] | None) -> None:
        """Write closed minutes (and their hours) in one transaction; prune when asked."""

    def rows(self, key: SeriesKey, resolution: int, since: int,
             until: int | None = None, step: int | None = None) -> list[tuple[int, Agg]]:
        """Return (bucket start, aggregate) rows of a series at a resolution, oldest first
        (merged into buckets of `step` seconds when given)."""


class MetricsHistory:
    """The in-memory hour and the pending rollups of every series; charts over both."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time,
                 interval: float = INTERVAL) -> None:
        """Keep rollups in `store`; `clock` is injectable so tests move time."""
        self.store = store
        self.clock = clock
        self.interval = interval
        self.ring: dict[SeriesKey, deque[tuple[float, Values]]] = {}
        self.pending: dict[tuple[SeriesKey, int], Agg] = {}
        self.latest: dict[SeriesKey, tuple[float, Values]] = {}
        self.extra: dict[SeriesKey, dict[str, float]] = {}  # totals for the last sample
        self.last_flush = clock()
        self.last_prune: float | None = None
        self.flushes = 0
        self._lock = threading.Lock()  # the ring and pending (the sampler's thread writes)
        self._flushing = threading.Lock()  # a write and its removal from pending are one step

    def record(self, at: float, samples: dict[SeriesKey, Values]) -> None:
        """Add one round of samples (one per series) taken at `at`."""
        bucket = int(at // MINUTE * MINUTE)
        size = int(RING / self.interval)
        with self._lock:
            for key, values in samples.items():
                ring = self.ring.get(key)
                if ring is None:
                    ring = self.ring[key] = deque(maxlen=size)
                ring.append((at, values))
                self.latest[key] = (at, values)
                agg = self.pending.get((key, bucket))
                if agg is None:
                    self.pending[(key, bucket)] = Agg.of(values)
                else:
                    agg.add(values)
            for key in [k for k, ring in self.ring.items() if ring and ring[-1][0] < at - RING]:
                del self.ring[key]  # a series gone for an hour (a removed instance)
                self.latest.pop(key, None)

    def flush_due(self, now: float | None = None) -> bool:
        """Tell whether a minute has passed since the last write."""
        return (now if now is not None else self.clock()) - self.last_flush >= FLUSH_EVERY

    def flush(self, now: float | None = None, *, force: bool = False) -> int:
        """Write the closed minutes (all pending ones with `force`); return how many rows."""
        now = now if now is not None else self.clock()
        prune = None
        if self.last_prune is None or now - self.last_prune >= PRUNE_EVERY:
            prune = {res: int(now - keep) for res, keep in KEEP.items()}
        with self._flushing:
            with self._lock:
                closed = {k: v for k, v in self.pending.items()
                          if force or k[1] + MINUTE <= now}
            if closed or prune:
                self.store.write(closed, prune)
            with self._lock:
                for k in closed:
                    self.pending.pop(k, None)
        self.last_flush = now
        if prune:
            self.last_prune = now
        self.flushes += 1
        return len(closed)

    def latest_of(self, key: SeriesKey, max_age: float | None = None) -> Values | None:
        """Return the series' last sample if taken within `max_age` (default 3 intervals)."""
        found = self.latest.get(key)
        age = 3 * self.interval if max_age is None else max_age
        if found is None or found[0] < self.clock() - age:
            return None
        return found[1]

    def series(self) -> list[SeriesKey]:
        """Return every series sampled within the last hour."""
        with self._lock:
            return list(self.ring)

    def chart(self, key: SeriesKey, range_name: str) -> Chart:
        """Return a range of one series, merged into at most MAX_POINTS steps."""
        resolution, step = step_for(range_name)
        now = self.clock()
        since = int(now - RANGES[range_name])
        points: list[tuple[float, Agg]] = []
        if range_name == "1h":
            with self._lock:
                ring = [(at, Agg.of(v)) for at, v in self.ring.get(key, ()) if at >= since]
            first = int(ring[0][0] // MINUTE * MINUTE) if ring else None
            # before the ring (a restart within the hour): the minute rows
            points += [(float(at), agg) for at, agg in
                       self.store.rows(key, MINUTE, since, first, step)]
            points += ring
        else:
            with self._flushing:  # rows and pending seen at one moment: nothing counted twice
                points += [(float(at), agg) for at, agg in self.store.rows(
                    key, resolution, since - since % resolution, None, step)]
                with self._lock:
                    mine = [(bucket, agg.copy()) for (k, bucket), agg in
                            self.pending.items() if k == key]
            for bucket, agg in mine:  # not written yet: still counts
                if bucket >= since:
                    points.append((float(bucket // resolution * resolution), agg))
        return merge_steps(points, step, resolution)


def merge_steps(points: Iterable[tuple[float, Agg]], step: int, resolution: int) -> Chart:
    """Merge points into buckets of `step` seconds, oldest first."""
    buckets: dict[int, Agg] = {}
    for at, agg in points:
        bucket = int(at // step * step)
        found = buckets.get(bucket)
        if found is None:
            found = buckets[bucket] = Agg()
        found.merge(agg)
    order = sorted(buckets)
    return Chart(resolution=resolution, step=step, at=order, aggs=[buckets[b] for b in order])
