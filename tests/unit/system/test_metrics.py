"""The metrics sampler runs only while watched, and its samples are sane."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from stackhub.events import EventBus
from stackhub.system import metrics
from stackhub.system.models import (
    CpuSample,
    DiskSample,
    MemorySample,
    MetricsSample,
    NetSample,
)


def fake_sample(value: float) -> MetricsSample:
    return MetricsSample(
        at=time.time(), cpu=CpuSample(percent=value, count=2),
        memory=MemorySample(total=100, used=50, available=50, percent=50.0),
        disk=DiskSample(path="/", total=100, used=10, free=90, percent=10.0),
        net=NetSample(rx_rate=1.0, tx_rate=2.0, rx_total=10, tx_total=20))


class FakeProbe:
    made = 0

    def __init__(self) -> None:
        FakeProbe.made += 1
        self.calls = 0

    def sample(self) -> MetricsSample:
        self.calls += 1
        return fake_sample(float(self.calls))


def test_host_probe_reads_real_counters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "PRIME_DELAY", 0.05)
    probe = metrics.HostProbe(tmp_path)
    first = probe.sample()
    second = probe.sample()
    for sample in (first, second):
        assert 0.0 <= sample.cpu.percent <= 100.0
        assert sample.cpu.count >= 1
        assert 0 < sample.memory.used <= sample.memory.total
        assert sample.disk.path == str(tmp_path)
        assert sample.disk.total > 0
        assert sample.net.rx_rate >= 0 and sample.net.tx_rate >= 0
    assert second.at >= first.at
    assert second.net.rx_total >= first.net.rx_total


def test_virtual_interfaces_are_not_counted() -> None:
    assert metrics._physical("eth0")
    assert metrics._physical("enp3s0")
    for nic in ("lo", "docker0", "veth12ab", "br-0123abcd"):
        assert not metrics._physical(nic)


async def test_sampler_runs_only_while_watched() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    got = bus.subscribe(lambda e: e.topic == "metrics")
    sampler = metrics.MetricsSampler(bus, FakeProbe, interval=0.01)
    assert not sampler.running

    sampler.acquire()
    sampler.acquire()
    assert sampler.running and sampler.watchers == 2
    event = await asyncio.wait_for(got.queue.get(), 20)
    assert (event.topic, event.key, event.kind) == ("metrics", "host", "sample")
    assert event.data["cpu"]["percent"] >= 1.0
    assert set(event.data) == {"at", "cpu", "memory", "disk", "net"}

    sampler.release()
    assert sampler.running  # one watcher is left
    sampler.release()
    assert not sampler.running and sampler.watchers == 0
    await asyncio.sleep(0.05)
    while not got.queue.empty():
        got.queue.get_nowait()
    await asyncio.sleep(0.05)
    assert got.queue.empty()  # nothing is published once nobody watches
    assert not sampler.history


async def test_release_without_watchers_is_harmless() -> None:
    bus = EventBus()
    sampler = metrics.MetricsSampler(bus, FakeProbe, interval=0.01)
    sampler.release()
    assert sampler.watchers == 0 and not sampler.running


async def test_read_measures_once_when_idle_and_reuses_latest_when_running() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    sampler = metrics.MetricsSampler(bus, FakeProbe, interval=0.01)
    idle = await sampler.read()
    assert idle.history == [] and idle.interval == 0.01
    sampler.acquire()
    for _ in range(2000):
        if len(sampler.history) >= 2:
            break
        await asyncio.sleep(0.01)
    live = await sampler.read()
    assert live.sample == live.history[-1]
    assert len(live.history) >= 2
    await sampler.close()
    assert not sampler.running


async def test_hold_keeps_the_sampler_alive_only_for_metrics() -> None:
    class State:
        pass

    class App:
        state = State()

    class Services:
        bus = EventBus()

        class paths:
            root = Path("/")

    app = App()
    app.state.services = Services()  # type: ignore[attr-defined]
    Services.bus.bind(asyncio.get_running_loop())
    gate = asyncio.Event()

    async def pump() -> None:
        await gate.wait()

    other = asyncio.create_task(metrics.hold(app, "instance", pump()))
    await asyncio.sleep(0)
    sampler = metrics.sampler_of(app)
    assert sampler.watchers == 0
    watched = asyncio.create_task(metrics.hold(app, "metrics", pump()))
    await asyncio.sleep(0)
    assert sampler.watchers == 1 and sampler.running
    watched.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watched
    assert sampler.watchers == 0 and not sampler.running
    gate.set()
    await other
