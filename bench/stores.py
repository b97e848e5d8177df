"""Benchmark the catalog on the real CasaOS, Umbrel and Runtipi stores, read unchanged.

Run: ``.venv/bin/python bench/stores.py --casaos DIR --umbrel DIR --runtipi DIR`` with local
clones of the three store repositories (``git clone`` of IceWhaleTech/CasaOS-AppStore,
getumbrel/umbrel-apps, runtipi/runtipi-appstore). Each is added as a local store, synced (copy,
read, index), synced again unchanged, then searched with words from the apps' own names.

Prints: first sync and unchanged re-sync of the three stores (wall and CPU, with the first
sync's phases: stage = git clone or copy/link and hash, parse = reading the apps, images =
finding icons and screenshots, index = SQLite rows and the snapshot swap), search p50/p95 over
1,000 queries, and per store how many apps are listed, installable and not, with the most common
reasons. An app with dependencies counts as installable when each dependency is in the same
store and installable itself (catalog/readers/detect.py `check_dependencies`: StackHub installs
dependencies first); `bench/store_plans.py` then checks the installable apps plan into valid
projects. Targets (issue 16): first sync under 10 s, re-sync under 0.5 s, search p95 under
10 ms, and at least 90% of every store installable. ``--copy-images`` copies images instead
of hard-linking them (to compare).
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from stackhub.catalog import snapshot as snapshot_module  # noqa: E402
from stackhub.catalog import sync as sync_module  # noqa: E402
from stackhub.catalog.service import Catalog  # noqa: E402
from stackhub.state.db import Database  # noqa: E402

TARGET_SYNC_S = 10.0
TARGET_RESYNC_S = 0.5
TARGET_P95_MS = 10.0
TARGET_INSTALLABLE = 0.90
DISABLED = "the store has disabled this app"
"""Umbrel's ``disabled: true`` (catalog/readers/umbrel.py): refused there as here."""


def percentile(values: list[float], share: float) -> float:
    """Return the value below which `share` of the sorted values fall."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


PHASES = {"stage": "_stage", "parse": "read_entries", "images": "_asset", "index": "_swap_in"}


def timed_phases() -> dict[str, list[float]]:
    """Wrap the sync's phase functions to add up their wall and CPU seconds (outermost calls)."""
    totals = {phase: [0.0, 0.0] for phase in PHASES}
    for phase, attr in PHASES.items():
        original = getattr(sync_module, attr)

        def wrapper(*args: Any, _f: Any = original, _t: list[float] = totals[phase],
                    _depth: list[int] = [0], **kwargs: Any) -> Any:  # noqa: B006
            _depth[0] += 1
            started, cpu = time.perf_counter(), time.process_time()
            try:
                return _f(*args, **kwargs)
            finally:
                _depth[0] -= 1
                if not _depth[0]:
                    _t[0] += time.perf_counter() - started
                    _t[1] += time.process_time() - cpu
        setattr(sync_module, attr, wrapper)
    return totals


def reason(problem: str) -> str:
    """Shorten a problem to its kind (names and values stripped) for counting."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"|\([^)]*\)", "…", problem)
    return re.sub(r"\b[\w.-]*\d[\w.-]*\b", "…", text)[:90]


def main() -> int:
    """Sync, re-sync and search the three stores; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("casaos", "umbrel", "runtipi"):
        parser.add_argument(f"--{name}", type=Path, required=True, help=f"{name} store clone")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--copy-images", action="store_true",
                        help="copy images as before issue 16's last change (no hard links)")
    args = parser.parse_args()
    if args.copy_images:
        snapshot_module.LINKED_SUFFIXES = frozenset()
    os.environ["STACKHUB_OFFICIAL_STORE"] = "/nonexistent"
    stores = {"casaos": args.casaos, "umbrel": args.umbrel, "runtipi": args.runtipi}
    with tempfile.TemporaryDirectory(prefix="stackhub-bench-stores-") as tmp:
        root = Path(tmp)
        catalog = Catalog(Database(root / "stackhub.db"), root / "stores", arch="amd64")
        for name, path in stores.items():
            catalog.add(name, str(path.resolve()), local=True, max_bytes=1024 * 1024 * 1024)
        load_before = os.getloadavg()
        phases = timed_phases()
        started, cpu = time.perf_counter(), time.process_time()
        for name in stores:
            catalog.sync_store(name)
        sync_s, sync_cpu = time.perf_counter() - started, time.process_time() - cpu
        first = {phase: list(totals) for phase, totals in phases.items()}
        first["parse"] = [a - b for a, b in zip(first["parse"], first["images"], strict=True)]
        started, cpu = time.perf_counter(), time.process_time()
        for name in stores:
            assert not catalog.sync_store(name).changed
        resync_s, resync_cpu = time.perf_counter() - started, time.process_time() - cpu
        apps = catalog.list()
        rng = random.Random(16)
        words = [w for a in apps for w in re.findall(r"[A-Za-z]{3,}", a.title)] or ["app"]
        times, cpus = [], []
        for _ in range(args.queries):
            text = rng.choice(words)[: rng.randint(3, 8)]
            started, cpu = time.perf_counter(), time.thread_time()
            catalog.search(text)
            times.append((time.perf_counter() - started) * 1000)
            cpus.append((time.thread_time() - cpu) * 1000)
        print(f"apps: {len(apps)} in {len(stores)} stores; load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs "
              "(CPU time: this process only; the copy and git children are not counted)")
        print(f"load average before the first sync: {' '.join(f'{x:.1f}' for x in load_before)}")
        print(f"first sync: {sync_s:.2f} s, CPU {sync_cpu:.2f} s (target < {TARGET_SYNC_S} s)")
        print("  phases (wall / CPU s): " + ", ".join(
            f"{phase} {wall:.2f} / {cpu_s:.2f}" for phase, (wall, cpu_s) in first.items()))
        print(f"unchanged re-sync: {resync_s:.3f} s, CPU {resync_cpu:.3f} s "
              f"(target < {TARGET_RESYNC_S} s)")
        print(f"search over {args.queries} queries: p50 {percentile(times, 0.5):.2f} ms, "
              f"p95 {percentile(times, 0.95):.2f} ms (target < {TARGET_P95_MS} ms); CPU p50 "
              f"{percentile(cpus, 0.5):.2f} ms, p95 {percentile(cpus, 0.95):.2f} ms, mean "
              f"{sum(cpus) / len(cpus):.2f} ms")
        ok = True
        for name in stores:
            mine = [a for a in apps if a.store == name]
            installable = [a for a in mine if a.installable]
            share = len(installable) / len(mine) if mine else 0.0
            ok &= share >= TARGET_INSTALLABLE
            problems = {a.id: catalog.get(a.id).problems for a in mine if not a.installable}
            enabled = len(mine) - sum(DISABLED in p for p in problems.values())
            print(f"{name}: {len(mine)} listed, {len(installable)} installable "
                  f"({share:.1%}; target {TARGET_INSTALLABLE:.0%}); over the {enabled} the "
                  f"store does not disable: {len(installable) / max(enabled, 1):.1%}")
            counts = collections.Counter(reason(p) for found in problems.values()
                                         for p in found)
            for text, count in counts.most_common(8):
                print(f"    {count:4d}  {text}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
