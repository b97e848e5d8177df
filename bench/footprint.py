"""Footprint: idle resident memory and idle CPU of a server with the official store synced.

Issue 15 item 6 and issue 18 part 4 ask for at most 80 MB resident and under 0.5 % of one core
at idle, with the official store synced and the console served. A real `stackhub serve` starts
on a fresh data root (with `--instances` seeded records, default 0), the official store is
synced, the console's page and its assets are fetched once (when the console is built), then
after `--settle` seconds the server is left alone for `--idle` seconds (default 60): reported
are its RSS at the start and end of that minute, its CPU time over it (as a share of one core),
its thread count, and for reference the RSS of a bare interpreter importing the server.
Figures are printed; nothing is asserted. Run:
.venv/bin/python bench/footprint.py [--idle 60] [--instances 0]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import (  # bench/ is not a package: its folder is on sys.path
    REPO,
    BenchServer,
    bench_root,
    cpu_s,
    rss_mb,
    seed_records,
    sync_stores,
)


def threads(pid: int) -> int:
    """Return a process's thread count."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def import_rss() -> float:
    """RSS (MB) of a fresh interpreter after importing the server module alone."""
    code = ("import stackhub.server\n"
            "for line in open('/proc/self/status'):\n"
            "    if line.startswith('VmRSS:'): print(int(line.split()[1]) / 1024)\n")
    done = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c", code],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def serve_console(server: BenchServer) -> int:
    """Fetch the console's page and the assets it names; return how many were served."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        page = client.get("/")
        if page.status_code != 200:
            return 0
        assets = set(re.findall(r'(?:src|href)="(/[^"]+\.(?:js|css))"', page.text))
        for asset in assets:
            client.get(asset)
        return 1 + len(assets)


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--instances", type=int, default=0)
    parser.add_argument("--port", type=int, default=18797)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; import of the server alone: {import_rss():.1f} MB",
          flush=True)
    with bench_root("stackhub-bench-footprint-") as root:
        server = BenchServer(root, args.port)
        seed_records(server.data, args.instances)
        try:
            server.start(expect=args.instances)
            started = rss_mb(server.pid)
            sync_stores(server)
            served = serve_console(server)
            time.sleep(args.settle)
            before_rss, before_cpu = rss_mb(server.pid), cpu_s(server.pid)
            began = time.perf_counter()
            time.sleep(args.idle)
            spent = time.perf_counter() - began
            after_rss, after_cpu = rss_mb(server.pid), cpu_s(server.pid)
            share = (after_cpu - before_cpu) / spent * 100
            print(f"{args.instances} instances: RSS {started:.1f} MB started, {before_rss:.1f} "
                  f"MB with the store synced and {served} console files served, "
                  f"{after_rss:.1f} MB after {spent:.0f} s idle | idle CPU "
                  f"{after_cpu - before_cpu:.2f} s = {share:.2f} % of one core | "
                  f"{threads(server.pid)} threads | load average {os.getloadavg()[0]:.1f}",
                  flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
