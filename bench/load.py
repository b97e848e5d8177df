"""Load: wrk with 200 connections against each read endpoint; throughput, latency, memory.

A real `stackhub serve` runs on a fresh data root with N instance records (default 100, seeded
as bench/scale.py does: no containers) and the official store synced. For each read endpoint
(instance list, instance details, catalog search, health) Debian's `wrk` runs with 200
connections and 2 threads for `--duration` seconds (default 60) and reports requests/s, p50, p90
and p99 latency, mean and max, errors (socket errors, timeouts, non-2xx/3xx answers) and the
server's resident memory before, right after, and `--settle` seconds after each run, and the
server's CPU time per request (what a request costs whatever the machine's load), how long its
event loop thread waited runnable for a CPU during the run (schedstat) and how long wrk's own
threads did (a client starved of CPU reads its answers late: that shows as latency), the host's
TCP listen-queue overflows/drops over the run (nstat's TcpExtListenOverflows/ListenDrops), its
TCP retransmissions (tail-loss probes and timeouts apart) and the load average after. The
endpoint `conditional` (in `--endpoints`) loads the list the way a client holding the body asks:
`If-None-Match` with the current ETag (304s). The install prints its journaled steps, so the
time spent before the operation exists (the request, the plan) shows apart from its steps.

With `--install-during` an install of a tiny app on the real engine is timed once on the idle
server and once started in the middle of the list load, to show whether the load starves the
runner, the status cache or the event stream (issue 18, part 3).

The issue names no raw-tool baseline for this; its own figures from before the change (100
instances: 91 requests/s on the list, 1678 requests over 2 s) are the reference.
wrk's latency figures include its coordinated-omission correction: after the run it adds,
for every answer slower than twice a connection's mean interval between requests, synthetic
samples one interval apart below it (what a client sending at a steady rate would have seen),
so one stall of a few seconds on one connection adds dozens of slow samples. That is why the
mean can exceed what Little's law allows (connections / throughput) and why p99 moves with
the longest stalls rather than with the typical request.
Figures are printed; nothing is asserted. Needs `wrk` (apt-get install -y wrk). Run:
.venv/bin/python bench/load.py [--instances 100] [--duration 60] [--install-during]
    [--endpoints list,conditional,details,search,health]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import (  # bench/ is not a package: its folder is on sys.path
    COMPOSE,
    BenchServer,
    bench_root,
    cpu_s,
    rss_mb,
    seed_records,
    sync_stores,
    wipe,
)

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def ms(text: str) -> float:
    """Parse a wrk duration ("812.50us", "1.20s") into milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"cannot read wrk's duration {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_wrk(out: str) -> dict[str, Any]:
    """Read requests/s, p50/p99 and errors from `wrk --latency` output."""
    row: dict[str, Any] = {"errors": 0, "non2xx": 0, "timeouts": 0}
    if found := re.search(r"Requests/sec:\s+([\d.]+)", out):
        row["rps"] = float(found.group(1))
    if found := re.search(r"(\d+) requests in ([\d.]+\w+)", out):
        row["requests"] = int(found.group(1))
    if found := re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out):
        row["avg"], row["stdev"], row["max"] = (ms(g) for g in found.groups())
    for label, key in (("50%", "p50"), ("90%", "p90"), ("99%", "p99")):
        if found := re.search(rf"^\s+{re.escape(label)}\s+(\S+)", out, re.MULTILINE):
            row[key] = ms(found.group(1))
    if found := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                          r"timeout (\d+)", out):
        connect, read, write, timeout = (int(g) for g in found.groups())
        row["errors"] += connect + read + write + timeout
        row["timeouts"] = timeout
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        row["non2xx"] = int(found.group(1))
        row["errors"] += row["non2xx"]
    return row


def wrk(url: str, headers: dict[str, str], duration: int, connections: int,
        cpu: int | None = None) -> dict[str, Any]:
    """Run wrk once (on one CPU if `cpu` is given); return its parsed figures and raw output."""
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    args = [*pin, "wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
            "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    proc = subprocess.Popen([*args, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    waited = 0.0  # wrk's threads' time runnable but waiting for a CPU, last seen
    deadline = time.monotonic() + duration + 60
    while proc.poll() is None and time.monotonic() < deadline:
        waited = max(waited, threads_wait(proc.pid))
        time.sleep(0.25)
    out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    if proc.returncode != 0:
        raise SystemExit(f"wrk failed: {err or out}")
    return {**parse_wrk(out), "raw": out, "client_wait": waited}


def threads_wait(pid: int) -> float:
    """Seconds all threads of a process spent runnable but waiting for a CPU so far (0 once
    it is gone)."""
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def listen_drops() -> int:
    """The host's TCP listen-queue overflows and drops so far (/proc/net/netstat; the whole
    host: a connection refused or delayed at accept shows here)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            row = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(row.get("ListenOverflows", 0)) + int(row.get("ListenDrops", 0))
    return 0


def tcp_retransmits() -> tuple[int, int, int]:
    """The host's TCP retransmitted segments, tail-loss probes and retransmission timeouts so
    far (/proc/net/snmp, /proc/net/netstat; the whole host). On loopback nothing is lost: a
    probe means an answer (or wrk's next request) came >200 ms late, so the peer's delayed
    ACK fired first; a timeout (RTO: 200 ms, then doubling) would add its own delay."""
    found = {"RetransSegs": 0, "TCPLossProbes": 0, "TCPTimeouts": 0}
    for table in ("/proc/net/snmp", "/proc/net/netstat"):
        lines = Path(table).read_text().splitlines()
        for names, values in zip(lines[::2], lines[1::2], strict=False):
            if names.startswith(("Tcp:", "TcpExt:")):
                row = dict(zip(names.split()[1:], values.split()[1:], strict=False))
                for key in found:
                    if key in row:
                        found[key] = int(row[key])
    return found["RetransSegs"], found["TCPLossProbes"], found["TCPTimeouts"]


def loop_wait(pid: int) -> float:
    """Seconds the server's main thread (the event loop) spent runnable but waiting for a CPU
    (schedstat's run-queue time): a loop that waits here cannot answer whatever a request
    costs."""
    fields = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()
    return int(fields[1]) / 1e9


def ws_pings(ws: Any, count: int = 20) -> str:
    """Round trips of `count` websocket pings in a row: p50 and max in ms."""
    times = []
    for ident in range(100, 100 + count):
        sent = time.perf_counter()
        ws.send(json.dumps({"id": ident, "type": "ping"}))
        while json.loads(ws.recv(30)).get("id") != ident:
            pass
        times.append((time.perf_counter() - sent) * 1000)
    times.sort()
    return f"{times[len(times) // 2]:.1f} ms p50, {times[-1]:.1f} ms max"


def timed_install(server: BenchServer, name: str) -> tuple[float, str]:
    """Install a tiny app on the real engine; return the seconds until it succeeded, and its
    journaled steps with their durations (where the time went), the first being how long the
    request took to be answered (the plan: before the operation exists). A websocket
    subscribed to the install's operation events says when its `finished` event arrived
    (against the journal's end) and how long 20 pings took afterwards: whether the load starves
    the websocket."""
    from websockets.sync.client import connect

    url = server.url.replace("http://", "ws://") + "/api/ws"
    with httpx.Client(base_url=server.url, headers=server.auth(), timeout=120) as client, \
            connect(url, additional_headers=server.auth(), open_timeout=30) as ws:
        assert json.loads(ws.recv(30))["type"] == "auth_ok"
        ws.send(json.dumps({"id": 1, "type": "subscribe", "topic": "operation", "key": name}))
        while json.loads(ws.recv(30)).get("type") != "result":
            pass
        pushed: dict[str, float] = {}

        def listen() -> None:
            with contextlib.suppress(Exception):
                while "finished" not in pushed:
                    message = json.loads(ws.recv(120))
                    if message.get("event", {}).get("kind") == "finished":
                        pushed["finished"] = time.perf_counter()
        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        began = time.perf_counter()
        answer = client.post("/api/instances", json={
            "source": {"kind": "compose", "compose": COMPOSE}, "name": name})
        answer.raise_for_status()
        answered = time.perf_counter() - began
        op_id = answer.json()["operation"]["id"]
        while True:
            op = client.get(f"/api/operations/{op_id}").json()
            if op["state"] != "running":
                if op["state"] != "succeeded":
                    raise SystemExit(f"install of {name} ended {op['state']}: {op['error']}")
                ended = time.perf_counter() - began
                listener.join(30)
                steps = f"request answered {answered:.2f}; " + ", ".join(
                    f"{step['name']} {step['duration'] or 0:.2f}" for step in op.get("steps", []))
                if "finished" in pushed:
                    steps += (f"; websocket 'finished' at {pushed['finished'] - began:.2f} s, "
                              f"then pings {ws_pings(ws)}")
                else:
                    steps += "; websocket 'finished' event NOT received"
                return ended, steps
            if time.perf_counter() - began > 300:
                raise SystemExit(f"install of {name} did not finish in 300 s")
            time.sleep(0.1)


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--endpoints", default="list,details,search,health",
                        help="which of list,conditional,details,search,health to load")
    parser.add_argument("--install-during", action="store_true")
    parser.add_argument("--port", type=int, default=18795)
    parser.add_argument("--pin", action="store_true",
                        help="server (all threads) on CPU 0, wrk on CPU 1: a client off the box "
                             "instead of wrk and the server fighting over the same cores")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; {args.instances} instances, {args.connections} "
          f"connections, {args.duration} s per endpoint", flush=True)
    with bench_root("stackhub-bench-load-") as root:
        server = BenchServer(root, args.port)
        names = seed_records(server.data, args.instances)
        install = ""
        try:
            server.start(expect=args.instances)
            if args.pin:
                subprocess.run(["taskset", "-a", "-cp", "0", str(server.pid)], check=True,
                               capture_output=True)
                print("pinned: server on CPU 0, wrk on CPU 1", flush=True)
            install = server.install_id()
            sync_stores(server)
            time.sleep(3)
            idle = rss_mb(server.pid)
            print(f"idle RSS {idle:.1f} MB", flush=True)
            auth = server.auth()
            with httpx.Client(base_url=server.url, headers=auth, timeout=30) as client:
                etag = client.get("/api/instances").headers.get("etag", "")
                found = client.get("/api/catalog/apps", params={"q": "web"}).json()
            middle = names[len(names) // 2] if names else "none"
            targets = {
                "list": ("/api/instances", auth),
                "conditional": ("/api/instances", {**auth, "If-None-Match": etag}),
                "details": (f"/api/instances/{middle}", auth),
                "search": ("/api/catalog/apps?q=web", auth),
                "health": ("/api/health", {}),
            }
            print(f"(catalog search 'web' finds {len(found)} apps)", flush=True)
            for key in args.endpoints.split(","):
                path, headers = targets[key]
                before, cpu_before = rss_mb(server.pid), cpu_s(server.pid)
                drops, waited = listen_drops(), loop_wait(server.pid)
                resent = tcp_retransmits()
                row = wrk(server.url + path, headers, args.duration, args.connections,
                          1 if args.pin else None)
                after, cpu = rss_mb(server.pid), cpu_s(server.pid) - cpu_before
                drops, waited = listen_drops() - drops, loop_wait(server.pid) - waited
                after_tcp = tcp_retransmits()
                resent = (after_tcp[0] - resent[0], after_tcp[1] - resent[1],
                          after_tcp[2] - resent[2])
                per = cpu / max(1, row.get("requests", 0)) * 1000
                time.sleep(args.settle)
                settled = rss_mb(server.pid)
                print(f"{key:11} {path}: {row.get('rps', 0):.0f} req/s, p50 "
                      f"{row.get('p50', 0):.1f} ms, p90 {row.get('p90', 0):.1f} ms, p99 "
                      f"{row.get('p99', 0):.1f} ms (mean {row.get('avg', 0):.1f}, max "
                      f"{row.get('max', 0):.0f} ms), errors "
                      f"{row['errors']} (timeouts {row['timeouts']}, non-2xx/3xx "
                      f"{row['non2xx']}) | server CPU {cpu:.1f} s = {per:.3f} ms per request, "
                      f"loop waiting for a CPU {waited:.1f} s, wrk's threads "
                      f"{row['client_wait']:.1f} s | host listen drops {drops}, "
                      f"TCP retransmits {resent[0]} (tail-loss probes {resent[1]}, timeouts "
                      f"{resent[2]}), load average {os.getloadavg()[0]:.1f} | RSS "
                      f"{before:.1f} -> {after:.1f} MB, "
                      f"{settled:.1f} MB {args.settle:.0f} s later", flush=True)
            if args.install_during:
                quiet, quiet_steps = timed_install(server, "load-quiet")
                result: dict[str, Any] = {}
                runner = threading.Thread(target=lambda: result.update(wrk(
                    server.url + "/api/instances", auth, args.duration, args.connections,
                    1 if args.pin else None)))
                runner.start()
                time.sleep(min(5.0, args.duration / 4))
                loaded, loaded_steps = timed_install(server, "load-busy")
                runner.join()
                print(f"install of a tiny app: {quiet:.2f} s on the idle server, {loaded:.2f} s "
                      f"started during the list load ({result.get('rps', 0):.0f} req/s, p99 "
                      f"{result.get('p99', 0):.1f} ms, errors {result.get('errors', '?')})\n"
                      f"  steps idle: {quiet_steps}\n  steps under load: {loaded_steps}",
                      flush=True)
            print(f"RSS at the end {rss_mb(server.pid):.1f} MB (idle was {idle:.1f} MB)")
        finally:
            server.stop()
            if install:
                wipe(install)


if __name__ == "__main__":
    main()
