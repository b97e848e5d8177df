"""Sample the host's CPU, memory, disk and network, only while someone watches.

A ``MetricsSampler`` runs one background task that publishes a sample on the event bus (topic
``metrics``, key ``host``) every ``interval`` seconds. The task exists only while at least one
websocket subscription to ``metrics`` is alive: the first ``acquire`` starts it and the last
``release`` cancels it, so an unwatched server spends nothing on metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import psutil

from stackhub.adapters.cgroups import physical
from stackhub.events import Event, EventBus
from stackhub.system.models import (
    CpuSample,
    DiskSample,
    MemorySample,
    MetricsRead,
    MetricsSample,
    NetSample,
)

TOPIC = "metrics"
KEY = "host"
INTERVAL = 2.0
HISTORY = 90  # three minutes at the default interval
PRIME_DELAY = 0.5  # first sample of a session: measure over this long, not since boot
_physical = physical  # one list of virtual interfaces, shared with the metrics history


class HostProbe:
    """Read the host's counters and turn deltas since the previous reading into rates."""

    def __init__(self, disk_path: Path) -> None:
        """Measure the file system holding `disk_path`."""
        self.disk_path = disk_path
        self._cpu: tuple[float, float] | None = None  # (busy, total) seconds
        self._net: tuple[float, int, int] | None = None  # (time, rx, tx)

    @staticmethod
    def _cpu_times() -> tuple[float, float]:
        times = psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        total = sum(times)
        return total - idle, total

    @staticmethod
    def _net_totals() -> tuple[int, int]:
        rx = tx = 0
        for nic, counters in psutil.net_io_counters(pernic=True).items():
            if _physical(nic):
                rx += counters.bytes_recv
                tx += counters.bytes_sent
        return rx, tx

    def prime(self) -> None:
        """Take the reference readings that the next sample's rates are measured against."""
        self._cpu = self._cpu_times()
        rx, tx = self._net_totals()
        self._net = (time.monotonic(), rx, tx)

    def sample(self) -> MetricsSample:
        """Read everything once (blocking, cheap: a few /proc reads and one statvfs)."""
        if self._cpu is None or self._net is None:
            self.prime()
            time.sleep(PRIME_DELAY)
        assert self._cpu is not None and self._net is not None
        busy, total = self._cpu_times()
        d_total = total - self._cpu[1]
        cpu = 0.0 if d_total <= 0 else max(0.0, min(100.0, 100.0 * (busy - self._cpu[0])
                                                       / d_total))
        self._cpu = (busy, total)
        now = time.monotonic()
        rx, tx = self._net_totals()
        elapsed = max(now - self._net[0], 1e-3)
        rx_rate = max(0, rx - self._net[1]) / elapsed
        tx_rate = max(0, tx - self._net[2]) / elapsed
        self._net = (now, rx, tx)
        mem = psutil.virtual_memory()
        disk = psutil.disk_usage(str(self.disk_path))
        load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []
        return MetricsSample(
            at=time.time(),
            cpu=CpuSample(percent=round(cpu, 1), count=psutil.cpu_count() or 1, load=load),
            memory=MemorySample(total=mem.total, used=mem.total - mem.available,
                                available=mem.available, percent=round(mem.percent, 1)),
            disk=DiskSample(path=str(self.disk_path), total=disk.total, used=disk.used,
                            free=disk.free, percent=round(disk.percent, 1)),
            net=NetSample(rx_rate=round(rx_rate, 1), tx_rate=round(tx_rate, 1), rx_total=rx,
                          tx_total=tx))


class Probe(Protocol):
    """Something that measures the host once per call."""

    def sample(self) -> MetricsSample: ...


class MetricsSampler:
    """Publish samples on the bus while at least one watcher holds the sampler."""

    def __init__(self, bus: EventBus, probe: Callable[[], Probe], *,
                 interval: float = INTERVAL) -> None:
        """Start idle; `probe` makes a fresh probe (its own rate references) per session."""
        self.bus = bus
        self.probe = probe
        self.interval = interval
        self.history: deque[MetricsSample] = deque(maxlen=HISTORY)
        self.watchers = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Tell whether the sampling task is alive."""
        return self._task is not None and not self._task.done()

    def acquire(self) -> None:
        """Add a watcher; the first one starts sampling."""
        self.watchers += 1
        if not self.running:
            self._task = asyncio.create_task(self._run(), name="metrics-sampler")

    def release(self) -> None:
        """Drop a watcher; the last one stops sampling."""
        self.watchers = max(0, self.watchers - 1)
        if self.watchers == 0 and self._task is not None:
            self._task.cancel()
            self._task = None
            self.history.clear()

    async def _run(self) -> None:
        probe = self.probe()  # fresh references: rates measured within this session only
        while True:
            sample = await asyncio.to_thread(probe.sample)
            self.history.append(sample)
            self.bus.publish(Event(TOPIC, KEY, "sample", sample.model_dump(mode="json")))
            await asyncio.sleep(self.interval)

    async def read(self) -> MetricsRead:
        """Return the latest sample while sampling, else measure one now."""
        if self.running and self.history:
            latest = self.history[-1]
        else:
            latest = await asyncio.to_thread(self.probe().sample)
        return MetricsRead(sample=latest, history=list(self.history), interval=self.interval)

    async def close(self) -> None:
        """Stop sampling for good (server shutdown)."""
        task, self._task = self._task, None
        self.watchers = 0
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def sampler_of(app: Any) -> MetricsSampler:
    """Return the app's sampler, created on first use beside the app's services."""
    sampler: MetricsSampler | None = getattr(app.state, "metrics", None)
    if sampler is None:
        services = app.state.services
        root = services.paths.root
        sampler = MetricsSampler(services.bus, lambda: HostProbe(root))
        app.state.metrics = sampler
    return sampler


async def hold(app: Any, topic: str, work: Awaitable[None]) -> None:
    """Run a subscription's pump; a ``metrics`` one keeps the sampler alive meanwhile."""
    if topic != TOPIC:
        await work
        return
    sampler = sampler_of(app)
    sampler.acquire()
    try:
        await work
    finally:
        sampler.release()
