"""The metrics history: rollup math, flushes, retention and charts, with a fake clock and a
real SQLite database; the sampler's rates over fake counters; the cgroup readers over fake
cgroup trees (v2 and v1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackhub.adapters.cgroups import (
    CgroupReader,
    ContainerCounters,
    HostCounters,
    io_v1,
    io_v2,
    net_totals,
)
from stackhub.adapters.engine import ContainerInfo
from stackhub.state.db import Database
from stackhub.system.history import (
    HOST,
    HOUR,
    METRICS,
    MINUTE,
    Agg,
    MetricsHistory,
    merge_steps,
    step_for,
)
from stackhub.system.history_sampler import HistorySampler, folder_size
from stackhub.system.history_store import HistoryStore

T0 = 1_700_002_800.0  # a whole hour
APP = ("instance", "blog")


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def values(cpu: float | None, memory: float | None = None) -> tuple[float | None, ...]:
    return (cpu, memory, None, None, None, None, None)


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    return HistoryStore(Database(tmp_path / "db.sqlite"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def history(store: HistoryStore, clock: Clock) -> MetricsHistory:
    return MetricsHistory(store, clock=clock)


def feed(history: MetricsHistory, clock: Clock, seconds: int, cpu: float, *,
         key: tuple[str, str] = APP) -> None:
    """Record one sample every 5 s for `seconds`, moving the clock."""
    for _ in range(seconds // 5):
        history.record(clock.now, {key: values(cpu, cpu * 10)})
        clock.now += 5


def test_aggregates_skip_missing_values_and_merge_exactly() -> None:
    agg = Agg.of(values(1.0, 10.0))
    agg.add(values(None, 30.0))
    agg.add(values(5.0, None))
    cpu, memory = METRICS.index("cpu"), METRICS.index("memory")
    assert (agg.mins[cpu], agg.maxs[cpu], agg.mean(cpu), agg.counts[cpu]) == (1.0, 5.0, 3.0, 2)
    assert (agg.mins[memory], agg.maxs[memory], agg.mean(memory)) == (10.0, 30.0, 20.0)
    other = Agg.of(values(9.0))
    other.merge(agg)
    assert (other.mins[cpu], other.maxs[cpu], other.counts[cpu]) == (1.0, 9.0, 3)
    assert other.mean(cpu) == pytest.approx(5.0)  # (1 + 5 + 9) / 3: weighted by counts
    assert Agg().mean(cpu) is None and other.mean(METRICS.index("disk")) is None


def test_steps_per_range_keep_charts_under_360_points() -> None:
    assert step_for("1h") == (5, 10)
    assert step_for("24h") == (MINUTE, 240)
    assert step_for("7d") == (HOUR, HOUR)
    assert step_for("90d") == (HOUR, 6 * HOUR)
    chart = merge_steps([(0.0, Agg.of(values(2.0))), (5.0, Agg.of(values(4.0))),
                         (10.0, Agg.of(values(6.0)))], 10, 5)
    assert chart.at == [0, 10]
    assert [a.mean(0) for a in chart.aggs] == [3.0, 6.0]


def test_minutes_are_written_once_closed_at_most_once_a_minute(
        history: MetricsHistory, store: HistoryStore, clock: Clock) -> None:
    feed(history, clock, 90, 10.0)  # 1.5 minutes: one closed minute, one open
    assert history.flush_due()
    assert history.flush() == 1
    assert store.count() == {MINUTE: 1, HOUR: 1}
    assert not history.flush_due()  # just written: the next write waits a minute
    [(at, minute)] = store.rows(APP, MINUTE, 0)
    assert at == T0 and minute.counts[0] == 12 and minute.mean(0) == 10.0
    assert minute.mean(1) == 100.0
    feed(history, clock, 60, 30.0)
    assert history.flush() == 1  # the minute that was open, now closed
    minutes = store.rows(APP, MINUTE, 0)
    assert [m for m, _ in minutes] == [T0, T0 + 60]
    assert minutes[1][1].counts[0] == 12  # 6 samples at 10, 6 at 30
    assert (minutes[1][1].mins[0], minutes[1][1].maxs[0], minutes[1][1].mean(0)) == (
        10.0, 30.0, 20.0)
    [(hour_at, hour)] = store.rows(APP, HOUR, 0)
    assert hour_at == T0 and hour.counts[0] == 24 and hour.mean(0) == 15.0
    assert (hour.mins[0], hour.maxs[0]) == (10.0, 30.0)


def test_a_minute_written_twice_is_merged_not_replaced(
        history: MetricsHistory, store: HistoryStore, clock: Clock) -> None:
    feed(history, clock, 30, 10.0)
    history.flush(force=True)  # a shutdown mid-minute writes the open minute
    restarted = MetricsHistory(store, clock=clock)
    feed(restarted, clock, 30, 20.0)
    clock.now += 60
    restarted.flush()
    [(_, minute)] = store.rows(APP, MINUTE, 0)
    assert minute.counts[0] == 12 and minute.mean(0) == 15.0
    assert (minute.mins[0], minute.maxs[0]) == (10.0, 20.0)


def test_retention_prunes_old_minutes_and_hours_on_a_fake_clock(
        history: MetricsHistory, store: HistoryStore, clock: Clock) -> None:
    feed(history, clock, 120, 1.0)
    history.flush()
    clock.now += 47 * 3600  # minute rows are still within 48 h
    feed(history, clock, 65, 2.0)
    history.flush()
    assert store.count()[MINUTE] == 3  # pruned at most once an hour: none yet anyway
    clock.now += 2 * 3600  # the first minutes are now older than 48 h
    feed(history, clock, 65, 3.0)
    history.flush()
    minutes = [at for at, _ in store.rows(APP, MINUTE, 0)]
    assert T0 not in minutes and min(minutes) > clock.now - 48 * 3600
    assert store.rows(APP, HOUR, 0)[0][0] == T0  # hourly rows stay 90 days
    clock.now = T0 + 91 * 86400
    feed(history, clock, 65, 4.0)
    history.flush()
    hours = [at for at, _ in store.rows(APP, HOUR, 0)]
    assert hours and min(hours) > clock.now - 90 * 86400
    assert [at for at, _ in store.rows(APP, MINUTE, 0)] == [at for at, _ in store.rows(
        APP, MINUTE, int(clock.now - 48 * 3600))]


def test_charts_add_what_is_not_written_yet_and_count_nothing_twice(
        history: MetricsHistory, store: HistoryStore, clock: Clock) -> None:
    feed(history, clock, 180, 10.0)
    history.flush()  # two closed minutes in SQLite, the third pending
    feed(history, clock, 30, 40.0)
    day = history.chart(APP, "24h")
    assert day.step == 240 and day.resolution == MINUTE
    total = sum(a.counts[0] for a in day.aggs)
    assert total == 36 + 6  # every sample once: written, pending and the open minute
    hour = history.chart(APP, "1h")
    assert hour.step == 10 and sum(a.counts[0] for a in hour.aggs) == 42
    assert max(a.maxs[0] or 0 for a in hour.aggs) == 40.0
    week = history.chart(APP, "7d")
    assert week.at == [T0] and week.aggs[0].counts[0] == 42
    assert history.chart(("instance", "other"), "24h").at == []
    assert history.chart(HOST, "90d").step == 6 * HOUR


def test_the_last_hour_after_a_restart_comes_from_minute_rows(
        store: HistoryStore, clock: Clock) -> None:
    before = MetricsHistory(store, clock=clock)
    feed(before, clock, 600, 5.0)
    before.flush(force=True)
    clock.now += 60  # restarted a minute later: an empty ring
    after = MetricsHistory(store, clock=clock)
    feed(after, clock, 60, 7.0)
    chart = after.chart(APP, "1h")
    assert sum(a.counts[0] for a in chart.aggs) == 120 + 12
    assert chart.aggs[0].mean(0) == 5.0 and chart.aggs[-1].mean(0) == 7.0


def test_latest_and_series_forget_what_stopped(history: MetricsHistory, clock: Clock) -> None:
    feed(history, clock, 10, 3.0)
    assert history.latest_of(APP) == values(3.0, 30.0)
    clock.now += 60
    assert history.latest_of(APP) is None  # stopped: not in the live table any more
    assert history.series() == [APP]
    clock.now += 3600
    feed(history, clock, 5, 1.0, key=HOST)
    assert history.series() == [HOST]  # gone for an hour: dropped from memory


class FakeReader(CgroupReader):
    def __init__(self) -> None:
        super().__init__(root="/nonexistent")
        self.counters: dict[str, ContainerCounters] = {}
        self.forgotten: set[str] = set()

    def read(self, container_id: str) -> ContainerCounters | None:
        return self.counters.get(container_id)


def test_the_sampler_turns_counters_into_rates_per_instance(
        history: MetricsHistory, clock: Clock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    reader = FakeReader()
    mono = [100.0]
    monkeypatch.setattr("stackhub.system.history_sampler.time.monotonic", lambda: mono[0])
    host = [HostCounters(cpu_busy=10, cpu_total=100, cpus=2, memory_total=1000,
                         memory_used=400, disk_total=5000, disk_used=100, rx_bytes=0,
                         tx_bytes=0)]
    containers = {"blog": [ContainerInfo(id="a", name="a", state="running"),
                           ContainerInfo(id="b", name="b", state="running"),
                           ContainerInfo(id="c", name="c", state="exited")]}
    sampler = HistorySampler(history, root=tmp_path, containers=lambda: containers,
                             reader=reader, host=lambda: host[0])

    def counters(cpu_s: float, memory: int, rx: int) -> ContainerCounters:
        return ContainerCounters(cpu_ns=int(cpu_s * 1e9), memory=memory, read_bytes=0,
                                 write_bytes=4096, rx_bytes=rx, tx_bytes=0)

    reader.counters = {"a": counters(1, 100, 0), "b": counters(1, 50, 0), "c": counters(9, 9, 9)}
    first = sampler.sample()
    assert first[APP] == (None, 150.0, None, None, None, None, None)  # no rate on first sight
    assert first[HOST][0] is None and first[HOST][1] == 400.0
    mono[0] += 5
    clock.now += 5
    reader.counters = {"a": counters(2, 120, 5000), "b": counters(1.5, 50, 0)}
    host[0] = HostCounters(cpu_busy=60, cpu_total=200, cpus=2, memory_total=1000,
                           memory_used=500, disk_total=5000, disk_used=100, rx_bytes=500,
                           tx_bytes=50)
    second = sampler.sample()
    cpu, memory, disk, rx, tx, read, write = second[APP]
    assert cpu == pytest.approx(30.0)  # 1.5 s of CPU over 5 s: 30 % of one core
    assert (memory, disk, rx, tx, read, write) == (170.0, None, 1000.0, 0.0, 0.0, 0.0)
    assert second[HOST][0] == pytest.approx(50.0) and second[HOST][3:5] == (100.0, 10.0)
    assert history.extra[APP] == {"containers": 2}
    mono[0] += 5
    reader.counters = {"a": counters(0.1, 10, 0)}  # restarted: counters went back
    del containers["blog"][1]
    third = sampler.sample()
    assert third[APP][0] is None and third[APP][1] == 10.0
    assert set(sampler._readings) == {"a"}


def test_folder_size_counts_blocks_and_never_follows_links(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.bin").write_bytes(b"x" * 100_000)
    (tmp_path / "data" / "sub").mkdir()
    (tmp_path / "data" / "sub" / "b.bin").write_bytes(b"y" * 50_000)
    (tmp_path / "data" / "root").symlink_to("/")
    size = folder_size(tmp_path / "data")
    assert 150_000 <= size < 400_000
    assert folder_size(tmp_path / "missing") == 0


NET_DEV = b"".join(line.encode() + b"\n" for line in (
    "Inter-|   Receive                                                |  Transmit",
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets",
    "    lo:    9999      10    0    0    0     0          0         0     9999      10 0 0",
    "  eth0:    1500      12    0    0    0     0          0         0      700       9 0 0",
    "veth12:     100       1    0    0    0     0          0         0       50       1 0 0"))


def test_counter_parsers() -> None:
    assert net_totals(NET_DEV) == (1600, 750)
    assert net_totals(NET_DEV, only_physical=True) == (1500, 700)
    assert net_totals(None) is None
    assert io_v2(b"8:0 rbytes=100 wbytes=20 rios=1 wios=1\n8:16 rbytes=1 wbytes=2\n") == (101, 22)
    assert io_v1(b"8:0 Read 300\n8:0 Write 40\n8:0 Total 340\nTotal 340\n") == (300, 40)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_reader_finds_v2_and_v1_cgroups(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    _write(proc / "42" / "net" / "dev", NET_DEV.decode())
    v2 = tmp_path / "v2"
    _write(v2 / "cgroup.controllers", "cpu io memory")
    scope = v2 / "system.slice" / "docker-abc.scope"
    _write(scope / "cpu.stat", "usage_usec 2500\nuser_usec 2000\n")
    _write(scope / "memory.current", "10000\n")
    _write(scope / "memory.stat", "anon 5000\ninactive_file 3000\n")
    _write(scope / "io.stat", "8:0 rbytes=7 wbytes=8 rios=1 wios=1\n")
    _write(scope / "cgroup.procs", "42\n43\n")
    reader = CgroupReader(root=str(v2), proc=str(proc))
    assert reader.version == 2
    assert reader.read("abc") == ContainerCounters(cpu_ns=2_500_000, memory=7000, read_bytes=7,
                                                   write_bytes=8, rx_bytes=1600, tx_bytes=750)
    assert reader.read("gone") is None
    v1 = tmp_path / "v1"
    _write(v1 / "cpuacct" / "docker" / "def" / "cpuacct.usage", "123456\n")
    _write(v1 / "memory" / "docker" / "def" / "memory.usage_in_bytes", "9000\n")
    _write(v1 / "memory" / "docker" / "def" / "memory.stat", "cache 1\ntotal_inactive_file 1000\n")
    _write(v1 / "memory" / "docker" / "def" / "cgroup.procs", "")
    _write(v1 / "blkio" / "docker" / "def" / "blkio.throttle.io_service_bytes",
           "8:0 Read 11\n8:0 Write 22\nTotal 33\n")
    old = CgroupReader(root=str(v1), proc=str(proc))
    assert old.version == 1
    assert old.read("def") == ContainerCounters(cpu_ns=123456, memory=8000, read_bytes=11,
                                                write_bytes=22, rx_bytes=None, tx_bytes=None)
    # elsewhere (a cgroup parent): found through the init process's /proc/<pid>/cgroup
    _write(v2 / "custom" / "x1" / "memory.current", "5\n")
    _write(proc / "77" / "cgroup", "0::/custom/x1\n")
    found = CgroupReader(root=str(v2), proc=str(proc), pid_of=lambda cid: 77)
    assert found.locate("x1") == "custom/x1" and found.read("x1") is not None
    asked: list[str] = []

    def failing(cid: str) -> int | None:
        asked.append(cid)
        raise RuntimeError("no such container")

    lost = CgroupReader(root=str(v2), proc=str(proc), pid_of=failing)
    assert lost.read("y1") is None and lost.read("y1") is None
    assert asked == ["y1"]  # a miss is not asked about again every round


def test_settings_turn_the_sampler_off_and_bound_the_interval(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from stackhub.system import history_sampler

    monkeypatch.setenv("STACKHUB_METRICS_HISTORY", "0")
    assert not history_sampler.enabled()
    monkeypatch.setenv("STACKHUB_METRICS_HISTORY", "1")
    assert history_sampler.enabled()
    for raw, wanted in (("0.01", 1.0), ("junk", 5.0), ("10", 10.0)):
        monkeypatch.setenv("STACKHUB_METRICS_INTERVAL", raw)
        assert history_sampler.interval() == wanted
