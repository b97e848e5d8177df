"""Time StackHub's backup and restore of an instance against raw restic on the same data.

A server runs on a fresh data root with one app holding about 100 MB (by default): mixed files
in its bind folder (a few large random files, many small ones) and a random file in a named
volume. In the same run, for each round:

- first: `stackhub backup create` (stop, the volume copied into the staging folder by a
  helper container that mounts it read-only, changed files only; with
  `STACKHUB_BACKUP_VOLUMES=tar` exported whole as a tar instead, the earlier default; one
  `restic backup`, start) into
  a fresh repository, and raw `restic backup` of the same trees (the instance's folder, its
  appdata folder, the volume's folder read directly as root) into another fresh repository;
- incremental: 1% of the bytes changed (a slice of each large file rewritten), both again;
- by hand: another 1% changed, then what a user does for a consistent backup without
  StackHub, `docker compose stop`, raw `restic backup`, `docker compose start`, timed as one
  figure and printed beside the stop-mode incremental (for reference; the target compares
  with raw restic alone);
- restore: `stackhub backup restore --yes` (the app stops while restic fetches the folders
  into a fresh folder and the staged volume straight into the volume through a helper; then
  the folders and the volume's entries are swapped by renames and the app starts) and raw
  `restic restore latest` into an empty folder.

Each figure is the median of `--rounds` (default 3) and printed with its ratio to raw restic
and its CPU time (the CLI's, the server's and their children's: restic, compose), with the
engine's (dockerd's and containerd's, not their shims') apart
(the issue's target: at most 1.10), plus the downtime of a stop-mode backup of the unchanged
app (from its `stop` step to the end of its `start` step; target under 5 s). `--hot` gives
the app a `backup` section (dump command `sync` in its service), so every backup is a hot one
(no stop: downtime 0). Run:
.venv/bin/python bench/backup.py [--mb 100] [--volume-mb MB] [--rounds 3] [--hot]
(the issue's sizes, 1 GiB of mixed files and a 1 GiB volume: `--mb 1024 --volume-mb 1024`)
(the server inherits the environment: `STACKHUB_BACKUP_VOLUMES=tar` or `=in-place` compares
the other ways of reading volumes; the load average is printed at the start and the end).
Before each timed command the bench waits for the previous one's deferred deletions and
flushes the disk (`sync`), so no command pays for the one before it, then writes and deletes
2 GiB (`warm`, skipped with `--no-warm`), so every command starts with recently freed memory:
on a virtual machine that hands free memory back to its host, the first command after a large
deletion otherwise writes several times faster than the others.
The app exits on SIGTERM as nginx or postgres do (`init: true`: busybox httpd is not PID 1);
`--slow-stop` gives the earlier app, which ignored it, so each stop waited its 1 s grace.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

CLI = [sys.executable, "-m", "stackhub"]
IMAGE = os.environ.get("STACKHUB_TEST_IMAGE", "stackhub-test/web:1")
NAME = "benchkeep"
MANIFEST = """\
format: stackhub/v1
id: benchkeep
name: Bench keeper
version: "1.0.0"
title: {en: Bench keeper}
category: [utilities]
parameters:
  - {name: WEB_PORT, type: port, default: 18450}
"""
HOT = """\
backup: {service: web, dump: [sync], timeout: 60}
"""
COMPOSE = f"""\
services:
  web:
    image: {IMAGE}
    command: ["sh", "-c", "exec httpd -f -p 80 -h /www"]
    init: true
    ports: ["${{WEB_PORT}}:80"]
    volumes:
      - ${{APP_DATA_DIR}}/state:/state
      - db:/db
    stop_grace_period: 1s
volumes:
  db: {{}}
"""


SERVER: list[int] = []  # the bench's server process, whose CPU counts with the CLI's
CPU: list[float] = []  # CPU seconds of each `run`, in order (bench's children + server's)


ENGINE: list[int] = []  # dockerd's and containerd's PIDs (their CPU is shown apart)
ENGINE_CPU: list[float] = []  # CPU seconds the engine used during each `run`


def _proc_cpu(pid: int, part: slice = slice(11, 15)) -> float:
    """CPU seconds a live process has used (0 if it is gone): by default its own and its
    waited-for children's; `SELF` or `KIDS` for one of the two."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[part]) / os.sysconf("SC_CLK_TCK")
    return 0.0


SELF, KIDS = slice(11, 13), slice(13, 15)  # utime + stime; cutime + cstime
PARTS: list[tuple[float, float, float]] = []  # each `run`'s CPU: bench's children (the CLI,
# raw restic), the server itself, the server's children (restic, compose)


def cpu_parts() -> tuple[float, float, float]:
    """CPU seconds so far: the bench's waited-for children, the server, its children."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (used.ru_utime + used.ru_stime, sum(_proc_cpu(pid, SELF) for pid in SERVER),
            sum(_proc_cpu(pid, KIDS) for pid in SERVER))


def engine_cpu() -> float:
    """CPU seconds used so far by dockerd and containerd (not their shims)."""
    return sum(_proc_cpu(pid) for pid in ENGINE)


def cpu_now() -> float:
    """CPU seconds used so far by this bench's waited-for children and by the server.

    The server's share includes its own waited-for children (restic, compose); work done
    inside dockerd (helper containers, container stops and starts) is not counted.
    """
    return sum(cpu_parts())


LAUNCH: list[float] = [0.0, 0.0]  # wall-clock start and end of the last `run`


def run(cmd: list[str], env: dict[str, str], **kwargs: Any) -> float:
    """Run a command, fail loudly, return its wall time (its CPU time goes to `CPU`)."""
    cpu, engine, parts = cpu_now(), engine_cpu(), cpu_parts()
    LAUNCH[0] = time.time()
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, **kwargs)
    elapsed = time.perf_counter() - start
    LAUNCH[1] = time.time()
    CPU.append(cpu_now() - cpu)
    PARTS.append(tuple(b - a for a, b in zip(parts, cpu_parts(), strict=True)))  # type: ignore[arg-type]
    ENGINE_CPU.append(engine_cpu() - engine)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:6])}... failed: {done.stderr[-2000:]}"
                         f"{done.stdout[-500:]}")
    return elapsed


def fill(state: Path, volume_dir: Path, total: int, volume: int | None = None) -> list[Path]:
    """Write ~`total` bytes: 60% large files and 10% small ones in the bind folder, 30% in
    the volume; or, given `volume`, `total` in the bind folder (six parts large files, one
    part small ones) and `volume` bytes in the volume. Return the large files (the
    incremental round changes a slice of each)."""
    if volume is None:
        big, few, volume = int(total * 0.6), int(total * 0.1), int(total * 0.3)
    else:
        big, few = total * 6 // 7, total // 7
    large: list[Path] = []
    state.mkdir(parents=True, exist_ok=True)
    for index in range(6):
        path = state / f"big-{index}.bin"
        path.write_bytes(os.urandom(big // 6))
        large.append(path)
    small = state / "small"
    small.mkdir(exist_ok=True)
    count = 2000
    for index in range(count):
        (small / f"f{index:04d}.txt").write_bytes(os.urandom(few // count))
    vol = volume_dir / "data.bin"
    with vol.open("wb") as handle:  # in slices: a 1 GiB `urandom` would sit in memory twice
        for start in range(0, volume, 64 << 20):
            handle.write(os.urandom(min(64 << 20, volume - start)))
    large.append(vol)
    return large


def change(files: list[Path], share: float) -> None:
    """Rewrite `share` of each file's bytes (a slice in its middle)."""
    for path in files:
        size = path.stat().st_size
        width = max(1, int(size * share))
        with path.open("r+b") as handle:
            handle.seek(size // 2)
            handle.write(os.urandom(width))


def settle(data: Path) -> None:
    """Start each timed command from the same state: the previous command's deferred work
    (a restore deletes the old data in the background) done, its writes flushed to disk.

    Without it each command paid for the one before it: the raw restore ran beside the
    deletion of the 1 GB the StackHub restore had just put aside, and every command beside
    the write-back of the one before.
    """
    deferred = [data / "backups" / "work", data / "backups" / "trash"]
    deadline = time.monotonic() + 120
    while any(f.is_dir() and any(f.iterdir()) for f in deferred) and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    os.sync()


def warm(folder: Path, size: int = 2 << 30) -> None:
    """Write `size` bytes to a scratch file and delete it at once, so the next command starts
    with that much recently freed memory, as any command does on bare metal.

    On this virtual machine (Firecracker, virtio-balloon free page reporting), memory left
    free for about 2 s goes back to the host, and touching it again costs a fault in the
    host: writing 1 GiB into the page cache took 0.18 s of system CPU right after a deletion
    and 0.8 to 1.3 s three seconds or more after one. Without this step the raw restore,
    which ran right after StackHub's restore had deleted 1 GB it put aside, wrote into fresh
    memory, and StackHub's, which ran after a backup that freed little, into returned
    memory. The pages are dropped with the file, never written to disk.
    """
    scratch = folder / "warm.bin"
    block = bytes(1 << 20)
    with scratch.open("wb") as handle:
        for _ in range(size // len(block)):
            handle.write(block)
    scratch.unlink()


def downtime(srv: str, token: str) -> float:
    """Seconds from the last backup's `stop` step to the end of its `start` step (the app
    starts while restic still reads once restic has read the app's own folders)."""
    ops = httpx.get(f"{srv}/api/operations", params={"instance": NAME, "kind": "backup"},
                    headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    op = ops["items"][0]
    names = [s["name"] for s in op["steps"]]

    def at(text: str) -> float:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    if "stop" not in names:
        return 0.0  # a hot backup: the app was never stopped
    # the app runs again when its `start` step ends: at the next step (`finish`, restic
    # still reading StackHub's own files) or at the operation's end
    after = len(names) - names[::-1].index("start")
    end = op["steps"][after]["started_at"] if after < len(names) else op["finished_at"]
    return at(end) - at(op["steps"][names.index("stop")]["started_at"])


def steps(srv: str, token: str, kind: str) -> str:
    """Say how long each step of the last operation of `kind` took, with what came before
    its first step (the CLI's start, the request's checks) and after its end (the CLI
    hearing of it); only for the command `run` ran last."""
    ops = httpx.get(f"{srv}/api/operations", params={"instance": NAME, "kind": kind},
                    headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    op = ops["items"][0]

    def at(text: str) -> float:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    marks = [("before", LAUNCH[0])] + [(s["name"], at(s["started_at"])) for s in op["steps"]] + [
        ("after", at(op["finished_at"])), ("end", LAUNCH[1])]
    return ", ".join(f"{name} {marks[i + 1][1] - start:.2f}"
                     for i, (name, start) in enumerate(marks[:-1]))


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--volume-mb", type=int, default=None,
                        help="MB in the named volume, with all of --mb in the bind folder "
                        "(the issue's sizes: --mb 1024 --volume-mb 1024); by default --mb is "
                        "split 70 %% bind folder, 30 %% volume")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hot", action="store_true", help="declare a hot backup (no stop)")
    parser.add_argument("--slow-stop", action="store_true",
                        help="the app ignores SIGTERM (busybox httpd as PID 1, no init), so "
                        "every stop waits out its 1 s grace period, as before 4 December")
    parser.add_argument("--no-warm", action="store_true",
                        help="skip writing and deleting 2 GiB before each timed command (see "
                        "`warm`: on a VM that returns free memory to its host, whichever "
                        "command follows a large deletion writes faster)")
    args = parser.parse_args()
    compose = COMPOSE.replace("    init: true\n", "") if args.slow_stop else COMPOSE
    print(f"load average at the start: {os.getloadavg()}; volumes: "
          f"{os.environ.get('STACKHUB_BACKUP_VOLUMES') or 'stage (default)'}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="stackhub-bench-backup-"))
    data = root / "data"
    port = 18766
    env = {**os.environ, "STACKHUB_DATA_DIR": str(data), "STACKHUB_URL": f"http://127.0.0.1:{port}"}
    server = subprocess.Popen([*CLI, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    SERVER.append(server.pid)
    figures: dict[str, list[float]] = {k: [] for k in (
        "hub_first", "raw_first", "hub_incr", "raw_incr", "hub_restore", "raw_restore",
        "downtime", "unchanged", "raw_stop_incr")}
    cpus: dict[str, list[float]] = {k: [] for k in figures}
    engines: dict[str, list[float]] = {k: [] for k in figures}
    for daemon in ("dockerd", "containerd"):
        found = subprocess.run(["pgrep", "-x", daemon], capture_output=True, text=True,
                               check=False).stdout.split()
        ENGINE.extend(int(pid) for pid in found)

    def timed(key: str, *cmds: list[str], cwd: Path | None = None) -> float:
        """Time commands run one after the other as one figure."""
        settle(data)
        if not args.no_warm:
            warm(root)
        figures[key].append(sum(run(cmd, env, cwd=cwd) for cmd in cmds))
        cpus[key].append(sum(CPU[-len(cmds):]))
        engines[key].append(sum(ENGINE_CPU[-len(cmds):]))
        if key.startswith("hub_"):
            cli, own, kids = PARTS[-1]
            print(f"  CPU (s): {key}: CLI {cli:.2f}, server {own:.2f}, its children (restic, "
                  f"compose) {kids:.2f}, engine {ENGINE_CPU[-1]:.2f}", flush=True)
        return figures[key][-1]

    try:
        deadline = time.monotonic() + 90  # a loaded host starts the server slowly
        while True:
            try:
                httpx.get(f"{env['STACKHUB_URL']}/api/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        token = (data / "secrets" / "admin-token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        answer = httpx.post(f"{env['STACKHUB_URL']}/api/instances", headers=headers, timeout=60,
                            json={"source": {"kind": "app", "manifest": MANIFEST + (
                                HOT if args.hot else ""),
                                             "compose": compose}, "name": NAME})
        if answer.status_code != 202:
            raise SystemExit(answer.text)
        deadline = time.monotonic() + 120
        while httpx.get(f"{env['STACKHUB_URL']}/api/instances/{NAME}", headers=headers,
                        timeout=30).json()["status"] != "running":
            if time.monotonic() > deadline:
                raise SystemExit("the app did not start")
            time.sleep(0.3)
        volume = f"stackhub-{NAME}_db"
        volume_dir = Path(subprocess.run(
            ["docker", "volume", "inspect", "-f", "{{.Mountpoint}}", volume], capture_output=True,
            text=True, check=True).stdout.strip())
        large = fill(data / "appdata" / NAME / "state", volume_dir, args.mb * 1_000_000,
                     None if args.volume_mb is None else args.volume_mb * 1_000_000)
        password = root / "raw.password"
        password.write_text("raw-bench-password\n")
        trees = [str(data / "instances" / NAME), str(data / "appdata" / NAME), str(volume_dir)]
        for index in range(args.rounds):
            # fresh repositories each round, so "first" is a full backup for both
            hub_repo = f"round{index}"
            run([*CLI, "backup", "repo", "add", hub_repo, str(root / f"hub-repo-{index}")], env)
            raw_repo = root / f"raw-repo-{index}"
            restic = ["restic", "--repo", str(raw_repo), "--password-file", str(password),
                      "--no-cache"]
            run([*restic, "init"], env)
            if index == 0:  # what one restic command pays to open each repository
                opened = run([*restic, "cat", "config", "--no-lock"], env)
                hint = (data / "secrets" / "backup" / f"{hub_repo}.key-hint")
                light = ["--key-hint", hint.read_text().strip()] if hint.is_file() else []
                hub_open = run(["restic", "--repo", str(root / f"hub-repo-{index}"),
                                "--password-file",
                                str(data / "secrets" / "backup" / f"{hub_repo}.password"),
                                "--no-cache", *light, "cat", "config", "--no-lock"], env)
                print(f"  opening a repository: raw restic {opened:.2f} s, StackHub's "
                      f"{'light key' if light else 'key (no light key)'} {hub_open:.2f} s",
                      flush=True)
            timed("hub_first", [*CLI, "backup", "create", NAME, "--repo", hub_repo])
            timed("raw_first", [*restic, "backup", "-q", *trees])
            change(large, 0.01)
            timed("hub_incr", [*CLI, "backup", "create", NAME, "--repo", hub_repo])
            print(f"  steps (s): incremental backup: "
                  f"{steps(env['STACKHUB_URL'], token, 'backup')}", flush=True)
            timed("raw_incr", [*restic, "backup", "-q", *trees])
            unchanged = timed("unchanged", [*CLI, "backup", "create", NAME, "--repo", hub_repo])
            figures["downtime"].append(downtime(env["STACKHUB_URL"], token))
            print(f"  steps (s): unchanged backup: {steps(env['STACKHUB_URL'], token, 'backup')}",
                  flush=True)
            # what a user gets doing a consistent backup by hand: stop, restic, start (the
            # app's project folder as Compose's working folder: its compose.yaml and .env)
            change(large, 0.01)
            by_hand = ["docker", "compose", "-p", f"stackhub-{NAME}"]
            timed("raw_stop_incr", [*by_hand, "stop"], [*restic, "backup", "-q", *trees],
                  [*by_hand, "start"], cwd=data / "instances" / NAME)
            timed("hub_restore", [*CLI, "backup", "restore", NAME, "latest", "--repo", hub_repo,
                                  "--yes"])
            print(f"  steps (s): restore: {steps(env['STACKHUB_URL'], token, 'restore')}",
                  flush=True)
            target = root / f"raw-restore-{index}"
            timed("raw_restore", [*restic, "restore", "latest", "--target", str(target)])
            shutil.rmtree(target, ignore_errors=True)
            print(f"round {index + 1}: first {figures['hub_first'][-1]:.2f} s vs restic "
                  f"{figures['raw_first'][-1]:.2f} s; incremental {figures['hub_incr'][-1]:.2f} s "
                  f"vs {figures['raw_incr'][-1]:.2f} s; restore {figures['hub_restore'][-1]:.2f} s "
                  f"vs {figures['raw_restore'][-1]:.2f} s; unchanged backup {unchanged:.2f} s, "
                  f"downtime {figures['downtime'][-1]:.2f} s", flush=True)
        med = {k: statistics.median(v) for k, v in figures.items()}
        cpu = {k: statistics.median(v) for k, v in cpus.items() if v}
        print(json.dumps({k: round(v, 3) for k, v in med.items()}))
        print(json.dumps({f"cpu_{k}": round(v, 3) for k, v in cpu.items()}))
        for what in ("first", "incr", "restore"):
            print(f"{what}: stackhub {med[f'hub_{what}']:.2f} s, restic {med[f'raw_{what}']:.2f} s,"
                  f" ratio {med[f'hub_{what}'] / med[f'raw_{what}']:.2f} (target <= 1.10); CPU "
                  f"{cpu[f'hub_{what}']:.2f} s vs {cpu[f'raw_{what}']:.2f} s; the engine's "
                  f"(dockerd, containerd) meanwhile {statistics.median(engines[f'hub_{what}']):.2f}"
                  f" s vs {statistics.median(engines[f'raw_{what}']):.2f} s")
        print(f"incr against a stop-mode backup by hand (`docker compose stop`, restic, `docker "
              f"compose start`; another 1 % changed): stackhub {med['hub_incr']:.2f} s, by hand "
              f"{med['raw_stop_incr']:.2f} s, ratio {med['hub_incr'] / med['raw_stop_incr']:.2f}")
        print(f"load average at the end: {os.getloadavg()}")
        print(f"downtime of a {'hot' if args.hot else 'stop-mode'} backup of the unchanged app: "
              f"{med['downtime']:.2f} s (target < 5 s); unchanged backup "
              f"{med['unchanged']:.2f} s")
    finally:
        subprocess.run([*CLI, "app", "remove", NAME, "--purge", "--yes"], env=env,
                       capture_output=True, check=False, timeout=120)
        server.terminate()
        server.wait(20)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
