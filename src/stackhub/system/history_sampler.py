"""The background sampler of the metrics history: host and every running instance, every 5 s.

Started with the server (``STACKHUB_METRICS_HISTORY=0`` turns it off). Each round reads the
host's counters from /proc and each running container's from its cgroup
(`adapters/cgroups.py`; containers come from the status cache, so no engine call per round),
turns counter deltas into rates, sums an instance's containers, and hands the round to
`MetricsHistory.record`. Rollups are written at most once a minute. The disk use of each
instance (its data folder plus its named volumes) is measured far less often (every 15 min).
Requests never sample: they read what the last round left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stackhub.adapters.cgroups import CgroupReader, ContainerCounters, HostCounters, host_counters
from stackhub.adapters.engine import ContainerInfo
from stackhub.system.history import HOST, MetricsHistory, SeriesKey, Values

log = logging.getLogger(__name__)
DISK_EVERY = 900.0
DISK_SOON = 60.0
DISK_MAX_ENTRIES = 500_000  # a walk stops there (the size is then a lower bound)


def enabled() -> bool:
    """Tell whether the history sampler runs (``STACKHUB_METRICS_HISTORY``, default on)."""
    return os.environ.get("STACKHUB_METRICS_HISTORY", "1").strip().lower() not in (
        "0", "false", "no", "off")


def interval() -> float:
    """Return the sampling interval (``STACKHUB_METRICS_INTERVAL``, default 5 s, at least 1)."""
    try:
        return max(1.0, float(os.environ.get("STACKHUB_METRICS_INTERVAL", "5")))
    except ValueError:
        return 5.0


def folder_size(path: Path, limit: int = DISK_MAX_ENTRIES) -> int:
    """Return the bytes a folder takes on disk (allocated blocks), links never followed."""
    total = 0
    seen = 0
    stack = [str(path)]
    while stack and seen < limit:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    seen += 1
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += info.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    return total


def _rate(now: int | None, before: int | None, seconds: float, scale: float = 1.0
          ) -> float | None:
    if now is None or before is None or now < before or seconds <= 0:
        return None  # first reading, or a counter that restarted (a restarted container)
    return (now - before) / seconds * scale


def _total(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


@dataclass
class Reading:
    """A container's counters and when they were read (monotonic seconds)."""

    at: float
    counters: ContainerCounters


class HistorySampler:
    """Take one round of samples on demand (`sample`), or every interval (`run`)."""

    def __init__(self, history: MetricsHistory, *, root: Path,
                 containers: Callable[[], dict[str, list[ContainerInfo]]],
                 reader: CgroupReader | None = None,
                 volume_sizes: Callable[[], dict[str, int]] | None = None,
                 host: Callable[[], HostCounters] | None = None) -> None:
        """Sample the data root's disk and the containers `containers()` lists (by instance)."""
        self.history = history
        self.root = root
        self.containers = containers
        self.reader = reader or CgroupReader()
        self.volume_sizes = volume_sizes
        self.host = host or (lambda: host_counters(root))
        self._host: tuple[float, HostCounters] | None = None
        self._readings: dict[str, Reading] = {}
        self.disk: dict[str, int] = {}
        self.disk_at: float | None = None
        self._disk: asyncio.Future[dict[str, int]] | None = None
        self.rounds = 0
        self.active = False  # the background task runs
        self.cpu_seconds = 0.0  # the sampler's own CPU time (thread time of its rounds)

    def _host_values(self, mono: float) -> Values:
        now = self.host()
        cpu = rx = tx = None
        if self._host is not None:
            before_at, before = self._host
            spent = now.cpu_total - before.cpu_total
            if spent > 0:
                cpu = max(0.0, min(100.0, 100.0 * (now.cpu_busy - before.cpu_busy) / spent))
            rx = _rate(now.rx_bytes, before.rx_bytes, mono - before_at)
            tx = _rate(now.tx_bytes, before.tx_bytes, mono - before_at)
        self._host = (mono, now)
        self.history.extra[HOST] = {"cpus": now.cpus, "memory_total": now.memory_total,
                                    "disk_total": now.disk_total}
        return (cpu, float(now.memory_used), float(now.disk_used), rx, tx, None, None)

    def _container_values(self, cid: str, mono: float) -> Values | None:
        counters = self.reader.read(cid)
        if counters is None:
            return None
        before = self._readings.get(cid)
        self._readings[cid] = Reading(mono, counters)
        memory = None if counters.memory is None else float(counters.memory)
        if before is None:
            return (None, memory, None, None, None, None, None)
        seconds, old = mono - before.at, before.counters
        return (_rate(counters.cpu_ns, old.cpu_ns, seconds, 100 / 1e9), memory, None,
                _rate(counters.rx_bytes, old.rx_bytes, seconds),
                _rate(counters.tx_bytes, old.tx_bytes, seconds),
                _rate(counters.read_bytes, old.read_bytes, seconds),
                _rate(counters.write_bytes, old.write_bytes, seconds))

    def sample(self) -> dict[SeriesKey, Values]:
        """Read the host and every running container once; record and return the round."""
        started = time.thread_time()
        at, mono = self.history.clock(), time.monotonic()
        round_: dict[SeriesKey, Values] = {HOST: self._host_values(mono)}
        running: set[str] = set()
        counts: dict[str, int] = {}
        for instance, containers in self.containers().items():
            rows = []
            for container in containers:
                if container.state != "running":
                    continue
                running.add(container.id)
                values = self._container_values(container.id, mono)
                if values is not None:
                    rows.append(values)
            if not rows:
                continue
            counts[instance] = len(rows)
            summed = tuple(_total([r[i] for r in rows]) for i in range(len(rows[0])))
            disk = self.disk.get(instance)
            round_[("instance", instance)] = (summed[0], summed[1],
                                             None if disk is None else float(disk), *summed[3:])
        for cid in [c for c in self._readings if c not in running]:
            del self._readings[cid]
        self.reader.forget(running)
        self.history.record(at, round_)
        for instance, count in counts.items():
            self.history.extra[("instance", instance)] = {"containers": count}
        self.rounds += 1
        self.cpu_seconds += time.thread_time() - started
        return round_

    def measure_disk(self) -> dict[str, int]:
        """Measure each instance's data folder plus its named volumes (slow: seldom)."""
        volumes: dict[str, int] = {}
        if self.volume_sizes is not None:
            try:
                volumes = self.volume_sizes()
            except Exception as err:  # the engine may be down: folders still count
                log.info("volume sizes unavailable: %s", err)
        sizes: dict[str, int] = {}
        for instance in self.containers():
            size = folder_size(self.root / "appdata" / instance)
            prefix = f"stackhub-{instance}_"
            size += sum(v for name, v in volumes.items() if name.startswith(prefix) and v > 0)
            sizes[instance] = size
        self.disk = sizes
        self.disk_at = self.history.clock()
        return sizes

    async def run(self) -> None:
        """Sample every interval, write rollups once a minute, measure disks every 15 min."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            try:
                since = None if self.disk_at is None else self.history.clock() - self.disk_at
                new = any(name not in self.disk for name in self.containers())
                # every 15 min, and within a minute for an instance not measured yet
                due = since is None or since >= DISK_EVERY or (new and since >= DISK_SOON)
                disk = self._disk
                if due and (disk is None or disk.done()):  # beside the rounds, never before
                    self.disk_at = self.history.clock()
                    self._disk = asyncio.ensure_future(asyncio.to_thread(self.measure_disk))
                await asyncio.to_thread(self.sample)
                if self.history.flush_due():
                    await asyncio.to_thread(self.history.flush)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("a metrics history round failed")
            next_at += self.history.interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if loop.time() - next_at > self.history.interval:
                next_at = loop.time()  # fell behind (a suspended host): no burst of rounds

    def start(self) -> asyncio.Task[None] | None:
        """Run in the background unless turned off (the server's lifespan)."""
        if not enabled():
            return None
        self.active = True
        return asyncio.create_task(self.run(), name="metrics-history")

    async def stop(self, task: asyncio.Task[None] | None) -> None:
        """Stop sampling and write what is pending (the current minute included)."""
        if task is None:
            return
        self.active = False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._disk is not None:  # a folder walk in its thread: let it end
            with contextlib.suppress(Exception):
                await self._disk
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.history.flush, force=True)
