"""Measure what the metrics history costs: sampling N running containers, and a 24 h chart.

1. Sampling: starts N containers of the test image on the real engine (default 50, labelled
   like an instance's, one instance each), then takes `--rounds` rounds (default 30) with the
   server's own sampler (`system/history_sampler.py`: host from /proc, each container from its
   cgroup, v2 or v1), writing rollups into a real SQLite database as the server does (once per
   12 rounds: once a minute at 5 s). Prints the CPU time per round and per container, and the
   share of one core that sampling every 5 s takes (target: under 1 %).
2. Chart query: fills a database with 48 h of 1-minute rows and 90 days of hourly rows for 50
   instances plus the host, and times the 24 h chart of one instance, answer model and JSON
   encoding included (target: under 20 ms).

Run: .venv/bin/python bench/metrics.py [--containers 50] [--rounds 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from stackhub.adapters.cgroups import CgroupReader
from stackhub.adapters.engine import ContainerInfo
from stackhub.state.db import Database
from stackhub.system.history import HOUR, MINUTE, Agg, MetricsHistory, SeriesKey
from stackhub.system.history_models import HistoryRead
from stackhub.system.history_sampler import HistorySampler
from stackhub.system.history_store import HistoryStore
from stackhub.system.history_views import _series

IMAGE = os.environ.get("STACKHUB_TEST_IMAGE", "stackhub-test/web:1")
INTERVAL = 5.0


def docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=300,
                          check=False)
    if done.returncode:
        raise SystemExit(f"docker {args[0]} failed: {done.stderr.strip()}")
    return done.stdout


def start_containers(count: int, tag: str) -> dict[str, list[ContainerInfo]]:
    found: dict[str, list[ContainerInfo]] = {}
    for i in range(count):
        name = f"{tag}-{i}"
        # no network: the engine's default bridge is not needed (net/dev is read all the same)
        cid = docker("run", "-d", "--rm", "--network", "none", "--name", name,
                     "--label", f"io.stackhub.bench={tag}",
                     "--label", f"io.stackhub.instance={name}", IMAGE,
                     "httpd", "-f", "-p", "80", "-h", "/www").strip()
        found[name] = [ContainerInfo(id=cid, name=name, instance=name, state="running")]
    return found


def bench_sampling(count: int, rounds: int, root: Path) -> None:
    tag = f"shbench-metrics-{uuid.uuid4().hex[:6]}"
    print(f"starting {count} containers of {IMAGE} ...", flush=True)
    try:
        containers = start_containers(count, tag)
        db = Database(root / "sample.db")
        history = MetricsHistory(HistoryStore(db))
        reader = CgroupReader()
        sampler = HistorySampler(history, root=root, containers=lambda: containers,
                                 reader=reader)
        sampler.sample()  # the first round finds the cgroups (cached afterwards)
        sampler.sample()
        seen = sum(1 for k in history.latest if k[0] == "instance")
        sampler.cpu_seconds, sampler.rounds = 0.0, 0
        flush_cpu = 0.0
        walls = []
        for i in range(rounds):
            started = time.perf_counter()
            sampler.sample()
            walls.append(time.perf_counter() - started)
            if i % 12 == 11:
                before = time.thread_time()
                history.flush(history.clock() + MINUTE, force=True)
                flush_cpu += time.thread_time() - before
            time.sleep(0.2)
        per_round = sampler.cpu_seconds / sampler.rounds
        flush_per_round = flush_cpu / rounds
        share = (per_round + flush_per_round) / INTERVAL * 100
        print(f"cgroup v{reader.version}; {seen} of {count} containers sampled")
        print(f"sampling: {per_round * 1000:.2f} ms CPU per round "
              f"({per_round / max(seen, 1) * 1e6:.0f} µs per container), "
              f"wall {statistics.median(walls) * 1000:.2f} ms median")
        print(f"rollup writes: {flush_per_round * 1000:.3f} ms CPU per round (one a minute)")
        print(f"share of one core at one round every {INTERVAL:.0f} s: {share:.3f} % "
              f"(target < 1 %)")
    finally:
        ids = docker("ps", "-aq", "--filter", f"label=io.stackhub.bench={tag}").split()
        if ids:
            docker("rm", "-f", *ids)


def bench_query(root: Path, instances: int = 50) -> None:
    db = Database(root / "query.db")
    store = HistoryStore(db)
    now = time.time()
    keys: list[SeriesKey] = [("host", ""), *[("instance", f"app{i}") for i in range(instances)]]
    started = time.perf_counter()
    for chunk_start in range(int(now - 48 * 3600), int(now), 3600):
        minutes: dict[tuple[SeriesKey, int], Agg] = {}
        for at in range(chunk_start - chunk_start % MINUTE, chunk_start + 3600, MINUTE):
            for n, key in enumerate(keys):
                agg = Agg()
                for k in range(12):
                    agg.add((float(n + k), 1e8 + k, None, 1e3, 2e3, 0.0, 4096.0))
                minutes[(key, at)] = agg
        store.write(minutes, None)
    hours: dict[tuple[SeriesKey, int], Agg] = {}
    for at in range(int(now - 90 * 86400) // HOUR * HOUR, int(now - 48 * 3600), HOUR):
        for key in keys:
            hours[(key, at)] = Agg.of((1.0, 1e8, None, 1e3, 2e3, 0.0, 0.0))
    with db.transaction() as conn:  # hourly rows beyond the minute rows (90 days)
        from stackhub.system.history_store import _INSERT, _row
        conn.executemany(_INSERT, [_row(key, HOUR, at, agg) for (key, at), agg in hours.items()])
    print(f"filled {sum(store.count().values())} rows ({store.count()}) in "
          f"{time.perf_counter() - started:.1f} s; database "
          f"{(root / 'query.db').stat().st_size / 1e6:.1f} MB")
    history = MetricsHistory(store)
    times, cpu = [], []
    for _ in range(30):
        started, started_cpu = time.perf_counter(), time.thread_time()
        chart = history.chart(("instance", "app7"), "24h")
        body = HistoryRead(scope="instance", name="app7", range="24h", step=chart.step,
                           resolution=chart.resolution, at=chart.at,
                           series=_series(chart)).model_dump_json()
        times.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - started_cpu)
    # wall time includes waiting for a core on a busy machine; CPU time is the query's own cost
    print(f"24 h chart of one instance: {len(chart.at)} points, {len(body)} bytes, "
          f"{statistics.median(times) * 1000:.2f} ms median wall, "
          f"{statistics.median(cpu) * 1000:.2f} ms median CPU, {max(times) * 1000:.2f} ms max "
          f"(target < 20 ms); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    times = []
    for _ in range(10):
        started = time.perf_counter()
        history.chart(("instance", "app7"), "90d")
        times.append(time.perf_counter() - started)
    print(f"90 d chart of one instance: {statistics.median(times) * 1000:.2f} ms median")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--skip-sampling", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_sampling:
            bench_sampling(args.containers, args.rounds, Path(tmp))
        bench_query(Path(tmp))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
