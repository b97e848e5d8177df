"""Time `stackhub app install` of a two-service app against plain `docker compose up -d --wait`.

All install the same app with local images, several times, alternating, in one process:
the CLI end to end (a new Python process each time), the same install through the HTTP API
(plan, journal, pull check, compose up, StackHub's readiness wait, verification; its event
stream followed to the end), and plain compose on the project `stackhub app plan` rendered,
both with `--wait` (the target's baseline) and without it (no readiness check at all, for
context). Prints each run, medians, the ratio of medians and the median of each run's ratio
(each run's figures come from the same minute, so the latter shrugs off slow spells of a
shared machine). Run: .venv/bin/python bench/install_overhead.py [--runs 15]
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
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "tests" / "fixtures" / "apps" / "two-tier"
CLI = [sys.executable, "-m", "stackhub"]


def run(args: list[str], env: dict[str, str]) -> float:
    """Run a command, fail loudly on error, return its wall time in seconds."""
    start = time.perf_counter()
    result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def api_install(url: str, token: str) -> float:
    """Install the app through the API, follow its event stream to the end; return seconds.

    The stream is what the CLI and console follow; polling the operation every 10 ms (as this
    bench did before) loads the server enough to slow the install it measures by ~70 ms.
    """
    source = {"kind": "app", "manifest": (APP / "stackhub-app.yaml").read_text(),
              "compose": (APP / "compose.yaml").read_text()}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"},
                      timeout=60) as client:
        start = time.perf_counter()
        answer = client.post("/api/instances", json={"source": source, "name": "bench-api"})
        answer.raise_for_status()
        op_id = answer.json()["operation"]["id"]
        with client.stream("GET", f"/api/operations/{op_id}/events") as events:
            for line in events.iter_lines():
                message = json.loads(line) if line else {}
                if message.get("kind") == "result":
                    elapsed = time.perf_counter() - start
                    operation = message["data"]["operation"]
                    if operation["state"] != "succeeded":
                        raise SystemExit(f"API install failed: {operation}")
                    return elapsed
        raise SystemExit("the operation stream ended without a result")


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    root = Path(tempfile.mkdtemp(prefix="stackhub-bench-"))
    port = 18765
    env = {**os.environ, "STACKHUB_DATA_DIR": str(root / "data"),
           "STACKHUB_URL": f"http://127.0.0.1:{port}"}
    server = subprocess.Popen([*CLI, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    compose_cmd = ["docker", "compose"]
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        plan_dir = root / "raw"
        run([*CLI, "app", "plan", str(APP), "--name", "bench-raw", "--output", str(plan_dir)], env)
        raw_args = [*compose_cmd, "-p", "bench-raw", "--project-directory", str(plan_dir), "-f",
                    str(plan_dir / "compose.yaml"), "--env-file", str(plan_dir / ".env")]
        token = (root / "data" / "secrets" / "admin-token").read_text().strip()
        hub_times: list[float] = []
        api_times: list[float] = []
        raw_times: list[float] = []
        bare_times: list[float] = []
        for index in range(runs):
            hub_times.append(run([*CLI, "app", "install", str(APP), "--name", "bench-hub",
                                  "--yes"], env))
            run([*CLI, "app", "remove", "bench-hub", "--purge", "--yes"], env)
            api_times.append(api_install(env["STACKHUB_URL"], token))
            run([*CLI, "app", "remove", "bench-api", "--purge", "--yes"], env)
            raw_times.append(run([*raw_args, "up", "-d", "--wait"], env))
            run([*raw_args, "down", "-v", "--timeout", "1"], env)
            bare_times.append(run([*raw_args, "up", "-d"], env))
            run([*raw_args, "down", "-v", "--timeout", "1"], env)
            print(f"run {index + 1}: stackhub CLI {hub_times[-1]:.2f} s, API "
                  f"{api_times[-1]:.2f} s, compose --wait {raw_times[-1]:.2f} s, compose "
                  f"(no wait) {bare_times[-1]:.2f} s", flush=True)
        hub, api = statistics.median(hub_times), statistics.median(api_times)
        raw, bare = statistics.median(raw_times), statistics.median(bare_times)
        print(f"median: stackhub app install {hub:.2f} s, API install {api:.2f} s, "
              f"docker compose up -d --wait {raw:.2f} s, docker compose up -d {bare:.2f} s")
        paired = statistics.median(h / r for h, r in zip(hub_times, raw_times, strict=True))
        paired_api = statistics.median(a / r for a, r in zip(api_times, raw_times, strict=True))
        print(f"ratio CLI/compose --wait (target <= 1.15): {hub / raw:.2f} of medians, "
              f"{paired:.2f} median of each run's ratio")
        print(f"ratio API/compose --wait: {api / raw:.2f} of medians, {paired_api:.2f} median of "
              "each run's ratio")
        print(f"ratio CLI/compose without any wait: {hub / bare:.2f}")
    finally:
        server.terminate()
        server.wait(20)
        for project in ("stackhub-bench-hub", "stackhub-bench-api"):
            subprocess.run([*compose_cmd, "-p", project, "down", "-v"], capture_output=True,
                           check=False)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
