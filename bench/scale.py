"""Scale: install time per instance, list latency, start-up and reconcile, memory per instance.

Two ways to get N instances (issue 18):
- `--real N[,N...]` (default 50): a real server installs N instances of a tiny app (one
  container of the test image) on the real engine, eight at a time; reported: install time per
  instance (wall time / N, and the median single install), `GET /api/instances` p50/p95 over
  200 sequential requests, the server's resident memory (RSS), then the server is restarted
  and timed: from the process start to `/api/health` answering, to the status cache having
  reconciled with the engine (health says `engine: true` and every instance reads `running`),
  each with the server's CPU seconds so far (what the wall time would be on an idle machine;
  the reconciled figure includes answering the bench's polls and the routes solved once the
  server answers), and `stackhub app list` (a fresh CLI process, median of 7).
- `--records N[,N...]` (default 250): N instance records written straight into a fresh
  database (no containers: each reads `missing`), then a real server started on it and
  timed the same way (start-up, reconcile, list p50/p95, CLI list, RSS). Start-up cost is in
  reading and serving the records, which is what 250 apps add; `--records 0` gives the
  baseline RSS of an empty server (the official store synced) for the per-instance figure.

Every server runs as `stackhub serve` in its own process with its own data root (removed
afterwards); engine objects of the real runs are removed by their installation label. Figures
are printed; nothing is asserted. Run:
.venv/bin/python bench/scale.py [--real 50,100,250] [--records 0,50,100,250]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
STACKHUB = [str(REPO / ".venv" / "bin" / "stackhub")]
IMAGE = os.environ.get("STACKHUB_TEST_IMAGE", "stackhub-test/web:1")
COMPOSE = f"services:\n  web:\n    image: {IMAGE}\n    stop_grace_period: 1s\n"


def rss_mb(pid: int) -> float:
    """Return a process's resident memory in MB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    """Return a process's CPU time so far (user + system), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    """Return the q-quantile (0..1) of values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


class BenchServer:
    """A `stackhub serve` process on its own data root and port."""

    def __init__(self, root: Path, port: int) -> None:
        """Use `root/data` as the data root; nothing starts yet."""
        self.root = root
        self.data = root / "data"
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STACKHUB_")}
        self.env.update({"STACKHUB_DATA_DIR": str(self.data), "STACKHUB_URL": self.url,
                         "STACKHUB_GATEWAY": "0"})

    def start(self, expect: int | None = None, states: set[str] | None = None,
              timeout: float = 120) -> dict[str, float]:
        """Start; return seconds to the health answer and to the reconciled list.

        Reconciled: health says the engine answers and the list has `expect` instances, all in
        `states` (when given).
        """
        log = (self.root / "server.log").open("ab")
        began = time.perf_counter()
        self.proc = subprocess.Popen([*STACKHUB, "serve", "--port", str(self.port)],
                                     env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log.close()
        answered = reconciled = answered_cpu = 0.0
        deadline = began + timeout
        with httpx.Client(timeout=30) as client:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise SystemExit(f"the server exited; see {self.root / 'server.log'}")
                try:
                    health = client.get(f"{self.url}/api/health")
                except httpx.HTTPError:
                    time.sleep(0.02)
                    continue
                if health.status_code == 200 and not answered:
                    answered = time.perf_counter() - began
                    answered_cpu = cpu_s(self.proc.pid)
                if health.status_code == 200 and health.json().get("engine"):
                    if expect is None:
                        reconciled = time.perf_counter() - began
                        break
                    try:
                        listed = client.get(f"{self.url}/api/instances", headers=self.auth())
                    except httpx.HTTPError:
                        continue
                    items = listed.json() if listed.status_code == 200 else []
                    if len(items) == expect and (states is None or all(
                            i["status"] in states for i in items)):
                        reconciled = time.perf_counter() - began
                        break
                time.sleep(0.02)
        if not reconciled:
            raise SystemExit(f"the server did not reconcile within {timeout} s")
        # CPU seconds the server used to get there: what the wall time would be on an idle
        # machine for this single-threaded start (the wall time includes waiting for a CPU)
        return {"answer": answered, "reconciled": reconciled, "answer_cpu": answered_cpu,
                "cpu": cpu_s(self.proc.pid)}

    def auth(self) -> dict[str, str]:
        """Return the admin token header."""
        token = (self.data / "secrets" / "admin-token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 20 s)."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def install_id(self) -> str:
        """This data root's installation id (the label on its engine objects)."""
        return (self.data / "install-id").read_text().strip()


@contextlib.contextmanager
def bench_root(prefix: str) -> Iterator[Path]:
    """A temporary folder under /var/lib (or the default temp dir), removed afterwards."""
    base = "/var/lib" if os.access("/var/lib", os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def seed_records(data: Path, count: int, prefix: str = "rec") -> list[str]:
    """Write `count` running instance records into a fresh data root's database."""
    from stackhub.apps.models import PortMapping
    from stackhub.config import Paths
    from stackhub.state.db import Database, now
    from stackhub.state.instances import InstanceRecord, Records

    paths = Paths(data)
    paths.ensure()
    db = Database(paths.db)
    records = Records(db)
    names = [f"{prefix}-{i:03d}" for i in range(count)]
    stamp = now()
    with db.transaction() as conn:
        for index, name in enumerate(names):
            records.insert(conn, InstanceRecord(
                name=name, app_ref="official/whoami", store="official", format="stackhub",
                version="1.10.1", revision=1, status="running", main_service="web",
                main_port=80, main_path="/",
                ports=[PortMapping(service="web", host_port=20000 + index, container_port=80)],
                parameters={"WEB_PORT": str(20000 + index), "ADMIN_PASSWORD": "x" * 24},
                secret_names=["ADMIN_PASSWORD"],
                definition={"id": "whoami", "store": "official", "name": "whoami",
                            "version": "1.10.1",
                            "compose": {"services": {"web": {"image": IMAGE}}},
                            "main": {"service": "web", "port": 80, "path": "/"}},
                error=None, update_available=None, created_at=stamp, updated_at=stamp))
    db.close()
    return names


def list_latency(server: BenchServer, requests: int = 200) -> tuple[float, float, int]:
    """Return p50 and p95 (ms) of sequential `GET /api/instances`, and the body size."""
    times: list[float] = []
    size = 0
    with httpx.Client(base_url=server.url, headers=server.auth(), timeout=30) as client:
        client.get("/api/instances")
        for _ in range(requests):
            began = time.perf_counter()
            answer = client.get("/api/instances")
            times.append((time.perf_counter() - began) * 1000)
            answer.raise_for_status()
            size = len(answer.content)
    return pct(times, 0.5), pct(times, 0.95), size


def cli_list(server: BenchServer, runs: int = 7) -> tuple[float, float]:
    """Return the median wall and CPU seconds of `stackhub app list` (a new process each)."""
    times: list[float] = []
    cpus: list[float] = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        done = subprocess.run([*STACKHUB, "app", "list"], env=server.env, capture_output=True,
                              check=False, stdin=subprocess.DEVNULL)
        times.append(time.perf_counter() - began)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if done.returncode != 0:
            raise SystemExit(f"stackhub app list failed: {done.stderr.decode()[-500:]}")
    return statistics.median(times), statistics.median(cpus)


def sync_stores(server: BenchServer) -> None:
    """Sync every store (the official one) so idle memory includes a synced catalog."""
    with httpx.Client(base_url=server.url, headers=server.auth(), timeout=120) as client:
        client.post("/api/stores/sync").raise_for_status()


def settle_rss(server: BenchServer, seconds: float = 3.0) -> float:
    """Wait a little (start-up work ends), then return the RSS."""
    time.sleep(seconds)
    return rss_mb(server.pid)


def records_run(count: int, port: int) -> dict[str, Any]:
    """Start a server on `count` seeded records; measure it."""
    with bench_root("stackhub-bench-scale-") as root:
        server = BenchServer(root, port)
        seed_records(server.data, count)
        try:
            first = server.start(expect=count, states={"missing"})  # creates install-id etc.
            sync_stores(server)
            server.stop()
            timed = server.start(expect=count, states={"missing"})
            rss = settle_rss(server)
            p50, p95, size = list_latency(server)
            cli = cli_list(server)
            return {"n": count, "first_start": first["reconciled"], **timed, "rss": rss,
                    "list_p50": p50, "list_p95": p95, "bytes": size, "cli": cli}
        finally:
            server.stop()


def install_all(server: BenchServer, names: list[str]) -> list[float]:
    """Install the instances, eight at a time; return each install's seconds."""
    def one(name: str) -> float:
        with httpx.Client(base_url=server.url, headers=server.auth(), timeout=60) as client:
            began = time.perf_counter()
            answer = client.post("/api/instances", json={
                "source": {"kind": "compose", "compose": COMPOSE}, "name": name})
            if answer.status_code != 202:
                raise SystemExit(f"install of {name} refused: {answer.text}")
            op_id = answer.json()["operation"]["id"]
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                op = client.get(f"/api/operations/{op_id}").json()
                if op["state"] == "succeeded":
                    return time.perf_counter() - began
                if op["state"] != "running":
                    raise SystemExit(f"install of {name} ended {op['state']}: {op['error']}")
                time.sleep(0.1)
        raise SystemExit(f"install of {name} did not finish")

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, names))


def wipe(install: str) -> None:
    """Remove every container and network of one installation, in bulk."""
    label = f"label=io.stackhub.install={install}"
    for kind, remove in ((["ps", "-aq"], ["rm", "-f", "-v"]),
                         (["network", "ls", "-q"], ["network", "rm"])):
        ids = subprocess.run(["docker", *kind, "--filter", label], capture_output=True,
                             text=True, check=False).stdout.split()
        if ids:
            subprocess.run(["docker", *remove, *ids], capture_output=True, check=False)


def real_run(count: int, port: int) -> dict[str, Any]:
    """Install `count` real instances, measure, restart the server, measure again."""
    with bench_root("stackhub-bench-scale-") as root:
        server = BenchServer(root, port)
        install = ""
        try:
            server.start()
            install = server.install_id()
            sync_stores(server)
            idle = settle_rss(server)
            names = [f"sc{count}-{i:03d}" for i in range(count)]
            began = time.perf_counter()
            singles = install_all(server, names)
            wall = time.perf_counter() - began
            loaded = settle_rss(server)
            p50, p95, size = list_latency(server)
            server.stop()
            timed = server.start(expect=count, states={"running"})
            rss = settle_rss(server)
            cli = cli_list(server)
            return {"n": count, "install_wall": wall, "per_instance": wall / count,
                    "single_median": statistics.median(singles), "idle_rss": idle,
                    "rss_after_installs": loaded, **timed, "rss": rss, "list_p50": p50,
                    "list_p95": p95, "bytes": size, "cli": cli}
        finally:
            server.stop()
            if install:
                wipe(install)


def counts(text: str) -> list[int]:
    """Parse "50,100" into [50, 100] ("" is none)."""
    return [int(part) for part in text.split(",") if part.strip()]


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--real", type=counts, default=[50],
                        help="instance counts installed on the real engine (e.g. 50,100,250)")
    parser.add_argument("--records", type=counts, default=[0, 250],
                        help="instance counts seeded as records (e.g. 0,50,100,250)")
    parser.add_argument("--port", type=int, default=18790)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    base_rss: float | None = None
    for count in args.records:
        row = records_run(count, args.port)
        if count == 0:
            base_rss = row["rss"]
        per = "" if base_rss is None or not count else \
            f", {(row['rss'] - base_rss) / count * 1024:.0f} KB/instance over the empty server"
        print(f"records {count}: first start {row['first_start']:.2f} s; restart: answers "
              f"{row['answer']:.2f} s (server CPU {row['answer_cpu']:.2f} s), reconciled "
              f"{row['reconciled']:.2f} s (server CPU {row['cpu']:.2f} s) | list p50 "
              f"{row['list_p50']:.1f} ms p95 {row['list_p95']:.1f} ms ({row['bytes']} B) | "
              f"`stackhub app list` {row['cli'][0]:.3f} s (CPU {row['cli'][1]:.3f} s) | RSS "
              f"{row['rss']:.1f} MB{per}",
              flush=True)
    for count in args.real:
        row = real_run(count, args.port + 1)
        print(f"real {count}: installs {row['install_wall']:.1f} s "
              f"({row['per_instance']:.2f} s/instance, single install median "
              f"{row['single_median']:.2f} s, 8 at a time) | list p50 {row['list_p50']:.1f} ms "
              f"p95 {row['list_p95']:.1f} ms ({row['bytes']} B) | restart: answers "
              f"{row['answer']:.2f} s (server CPU {row['answer_cpu']:.2f} s), reconciled (all "
              f"running) {row['reconciled']:.2f} s (server CPU "
              f"{row['cpu']:.2f} s) | `stackhub app list` {row['cli'][0]:.3f} s (CPU "
              f"{row['cli'][1]:.3f} s) | RSS idle {row['idle_rss']:.1f} MB, "
              f"after installs {row['rss_after_installs']:.1f} MB, after restart "
              f"{row['rss']:.1f} MB ({(row['rss'] - row['idle_rss']) / count * 1024:.0f} "
              "KB/instance)", flush=True)


if __name__ == "__main__":
    main()
