"""Time StackHub's safe update against the raw steps it stands for, in the same run.

A server runs on a fresh data root with a local store holding a two-service app (a web
service and a "db" service, both on the local registry's test images) that keeps about 100 MB
(by default) in its bind folder and a named volume. A plain Compose project with the same
services and the same amount of data runs beside it. Each round publishes a new version that
switches both services to the other image (v1 <-> v2, so every round really changes them), then:

- StackHub: `stackhub app update NAME --yes --stability 0` (pull while running, stop, restic
  snapshot of the definition, bind folder and volume, apply, start, readiness wait);
- raw: `docker pull` of both images, `docker compose stop`, `restic backup` of the project's
  folder, its data folder and the volume's folder, the new images in `.env`,
  `docker compose up -d --wait`.

The stability window (60 s by default in StackHub, and nothing the raw steps do) is set to 0
here: the issue's target is the added time "at most 1.15 plus the stability window", so the
ratio printed is of the two flows without it. Each figure is the median of `--rounds`
(default 3), with the ratio of the medians and both sides' step times. Before the rounds each
side's repository is made and holds one snapshot (not timed). Run:
.venv/bin/python bench/update.py [--mb 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from backup import CPU, SERVER, cpu_now, fill, run  # bench/backup.py: filler, timed runner

CLI = [sys.executable, "-m", "stackhub"]
REGISTRY = os.environ.get("STACKHUB_TEST_REGISTRY", "127.0.0.1:5000")
IMAGES = (f"{REGISTRY}/stackhub-test/web:1", f"{REGISTRY}/stackhub-test/web:2")
NAME = "benchupd"
COMPOSE = """\
services:
  web:
    image: ${WEB_IMAGE}
    command: ["sh", "-c", "exec httpd -f -p 80 -h /www"]
    ports: ["${WEB_PORT}:80"]
    volumes:
      - ${DATA}/state:/state
    stop_grace_period: 1s
  db:
    image: ${DB_IMAGE}
    command: ["sh", "-c", "exec sleep 1000000"]
    volumes:
      - db:/db
    stop_grace_period: 1s
volumes:
  db: {}
"""


def write_app(store: Path, version: int, image: str) -> None:
    """The store's app at `version`, both services on `image`."""
    folder = store / "apps" / NAME
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"format": "stackhub/v1", "id": NAME, "name": "Bench update",
                "version": f"{version}.0.0", "title": {"en": "Bench update"},
                "category": ["utilities"], "main": {"service": "web", "port": 80},
                "parameters": [{"name": "WEB_PORT", "type": "port", "default": 18470}]}
    (folder / "stackhub-app.yaml").write_text(json.dumps(manifest))
    compose = COMPOSE.replace("${WEB_IMAGE}", image).replace("${DB_IMAGE}", image)
    (folder / "compose.yaml").write_text(compose.replace("${DATA}", "${APP_DATA_DIR}"))


def volume_dir(volume: str) -> Path:
    """Where the engine keeps a named volume's files."""
    return Path(subprocess.run(["docker", "volume", "inspect", "-f", "{{.Mountpoint}}", volume],
                               capture_output=True, text=True, check=True).stdout.strip())


def raw_update(project: Path, image: str, restic: list[str], env: dict[str, str],
               steps: dict[str, float] | None = None) -> float:
    """The raw steps: pull, stop, restic backup, new images, up --wait; return the wall time
    (each step's time goes into `steps`)."""
    compose = ["docker", "compose", "--project-directory", str(project), "-p", "rawupd"]
    times = steps if steps is not None else {}
    start = time.perf_counter()
    times["pull"] = sum(run(["docker", "pull", "-q", ref], env) for ref in IMAGES)
    times["stop"] = run([*compose, "stop"], env)
    times["backup"] = run([*restic, "backup", "-q", str(project),
                           str(volume_dir("rawupd_db"))], env)
    text = (project / ".env").read_text().splitlines()
    (project / ".env").write_text("\n".join(
        f"{line.split('=')[0]}={image}" if line.startswith(("WEB_IMAGE=", "DB_IMAGE=")) else line
        for line in text) + "\n")
    times["up"] = run([*compose, "up", "-d", "--wait"], env)
    return time.perf_counter() - start


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for ref in IMAGES:
        subprocess.run(["docker", "pull", "-q", ref], check=True, capture_output=True)
    root = Path(tempfile.mkdtemp(prefix="stackhub-bench-update-"))
    data = root / "data"
    port = 18767
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "STACKHUB_DATA_DIR": str(data), "STACKHUB_URL": url}
    server = subprocess.Popen([*CLI, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    raw = root / "raw"
    compose = ["docker", "compose", "--project-directory", str(raw), "-p", "rawupd"]
    SERVER.append(server.pid)
    hub_times: list[float] = []
    raw_times: list[float] = []
    hub_cpu: list[float] = []
    raw_cpu: list[float] = []
    try:
        deadline = time.monotonic() + 90  # a loaded host starts the server slowly
        while True:
            try:
                httpx.get(f"{url}/api/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        token = (data / "secrets" / "admin-token").read_text().strip()
        store = root / "store"
        write_app(store, 1, IMAGES[0])
        run([*CLI, "store", "add", "bench", str(store), "--local"], env)
        run([*CLI, "app", "install", "bench/" + NAME, "--name", NAME, "--yes"], env)
        fill(data / "appdata" / NAME / "state", volume_dir(f"stackhub-{NAME}_db"),
             args.mb * 1_000_000)

        raw.mkdir()
        (raw / "compose.yaml").write_text(COMPOSE)
        (raw / ".env").write_text(f"WEB_IMAGE={IMAGES[0]}\nDB_IMAGE={IMAGES[0]}\n"
                                  f"WEB_PORT=18471\nDATA={raw / 'data'}\n")
        run([*compose, "up", "-d", "--wait"], env)
        fill(raw / "data" / "state", volume_dir("rawupd_db"), args.mb * 1_000_000)
        password = root / "raw.password"
        password.write_text("raw-bench-password\n")
        restic = ["restic", "--repo", str(root / "raw-repo"), "--password-file", str(password)]
        run([*restic, "init"], env)
        # Both sides start from a repository that exists and holds a first snapshot (an
        # update on a real server finds its backup repository made; the raw side's `init`
        # and first backup are not timed either)
        run([*CLI, "backup", "create", NAME], env)
        run([*restic, "backup", "-q", str(raw), str(volume_dir("rawupd_db"))], env)

        for index in range(args.rounds):
            image = IMAGES[(index + 1) % 2]
            write_app(store, index + 2, image)
            run([*CLI, "store", "sync", "bench"], env)
            hub_times.append(run([*CLI, "app", "update", NAME, "--yes", "--stability", "0"],
                                 env))
            hub_cpu.append(CPU[-1])
            steps = steps_of(url, token, hub_times[-1])
            raw_steps: dict[str, float] = {}
            before = cpu_now()
            raw_times.append(raw_update(raw, image, restic, env, raw_steps))
            raw_cpu.append(cpu_now() - before)
            print(f"round {index + 1} (-> {image.rsplit('/', 1)[1]}): stackhub "
                  f"{hub_times[-1]:.2f} s, raw {raw_times[-1]:.2f} s, ratio "
                  f"{hub_times[-1] / raw_times[-1]:.2f}; stackhub steps (s): "
                  f"{steps}; raw steps (s): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in raw_steps.items()), flush=True)
        hub, raw_med = statistics.median(hub_times), statistics.median(raw_times)
        print(json.dumps({"stackhub": round(hub, 3), "raw": round(raw_med, 3),
                          "ratio": round(hub / raw_med, 3), "mb": args.mb,
                          "rounds": args.rounds,
                          "cpu_stackhub": round(statistics.median(hub_cpu), 3),
                          "cpu_raw": round(statistics.median(raw_cpu), 3),
                          "load": os.getloadavg()}))
        print(f"update with {args.mb} MB of data: stackhub {hub:.2f} s, raw steps {raw_med:.2f} s,"
              f" ratio {hub / raw_med:.2f} (target <= 1.15 plus the stability window, here 0)")
    finally:
        subprocess.run([*CLI, "app", "remove", NAME, "--purge", "--yes"], env=env,
                       capture_output=True, check=False, timeout=120)
        subprocess.run([*compose, "down", "-v"], capture_output=True, check=False, timeout=120)
        server.terminate()
        server.wait(20)
        shutil.rmtree(root, ignore_errors=True)


def steps_of(url: str, token: str, wall: float) -> str:
    """StackHub's step times of the last update of the bench app, then the time of the CLI's
    `wall` spent outside the operation (CLI start, preview, preflight, result)."""
    ops = httpx.get(f"{url}/api/operations", params={"instance": NAME, "kind": "update"},
                    headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    op = ops["items"][0]

    def at(text: str) -> float:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    marks = [(s["name"], at(s["started_at"])) for s in op["steps"]] + [
        ("end", at(op["finished_at"]))]
    outside = wall - (marks[-1][1] - at(op["started_at"]))
    return ", ".join(f"{name} {marks[i + 1][1] - start:.2f}"
                     for i, (name, start) in enumerate(marks[:-1])) + f"; outside {outside:.2f}"


if __name__ == "__main__":
    main()
