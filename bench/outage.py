"""Time how fast StackHub notices the engine going away, and how fast it is exact again.

A server runs with DOCKER_HOST pointing at a unix-socket proxy in front of the real engine's
socket, with N instances installed (default 50, one small container each). The proxy is cut
the way a stopping dockerd goes away (listener closed, socket file removed, open connections
dropped), while this process polls `/api/health` and `/api/instances` every 10 ms:

- detect: from the cut (the socket file gone; connections already open are served for 3 more
  seconds, as by a stopping dockerd) to `engine: false` in the health answer, and to every
  instance listed as `unknown` (both must be under 2 s);
- exact: while cut, a third of the instances are stopped behind StackHub's back (through the
  real socket); from the proxy answering again to the health answer saying `engine: true` and
  every instance showing its true status (running or stopped; under 2 s).

Then `--hang-rounds` hangs (default 3): the proxy freezes the way a SIGSTOPped dockerd does
(its socket stays, new connections are accepted and never answered, open ones stall), and the
same four figures are taken from the freeze and from the thaw.

Runs `--rounds` outages (default 3) and prints each round and the worst. The real dockerd is
never stopped (tests/integration/test_outage.py does that). Run:
.venv/bin/python bench/outage.py [--instances 50] [--rounds 3] [--hang-rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

CLI = [sys.executable, "-m", "stackhub"]
DOCKER_SOCK = "/var/run/docker.sock"
IMAGE = "stackhub-test/web:1"
COMPOSE = f"services:\n  web:\n    image: {IMAGE}\n    stop_grace_period: 1s\n"
POLL = 0.01
LINGER = 3.0
"""Seconds the cut proxy keeps serving connections already open, as a stopping dockerd does
while it stops containers (the socket file is gone at once)."""


class SocketProxy:
    """A unix-socket proxy in front of the Docker socket that can be cut and restored."""

    def __init__(self, path: Path) -> None:
        """Listen on `path` once started."""
        self.path = path
        self.listener: socket.socket | None = None
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.running = threading.Event()  # cleared while frozen
        self.running.set()

    def start(self) -> None:
        """Accept connections and pipe them to the engine."""
        self.path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(self.path))
        listener.listen(128)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            self.running.wait()  # frozen: accepted by the kernel, never answered
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(DOCKER_SOCK)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self.running.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self, linger: float = 0.0) -> None:
        """Stop accepting and remove the socket file; drop open connections after `linger` s.

        A stopping dockerd does the same: it closes its socket at once but keeps serving the
        connections already open (an event stream among them) until its process exits.
        """
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        self.path.unlink(missing_ok=True)
        with self.lock:
            conns, self.conns = self.conns, []
        threading.Timer(linger, self._drop, args=(conns,)).start()

    def freeze(self) -> None:
        """Stop answering, as a SIGSTOPped dockerd: connections are accepted, nothing flows."""
        self.running.clear()

    def thaw(self) -> None:
        """Answer again (the held connections and data go through)."""
        self.running.set()

    @staticmethod
    def _drop(conns: list[socket.socket]) -> None:
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


def docker(*args: str) -> str:
    """Run the docker CLI against the real engine; return stdout."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, check=False,
                            timeout=300, env={**os.environ, "DOCKER_HOST": f"unix://{DOCKER_SOCK}"})
    if result.returncode != 0:
        raise SystemExit(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def until(check: Callable[[], bool], timeout: float = 30.0) -> float:
    """Poll `check` every 10 ms; return the seconds it took to hold."""
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"not reached within {timeout} s")
        time.sleep(POLL)
    return time.perf_counter() - start


def install_all(client: httpx.Client, names: list[str]) -> None:
    """Install the instances, eight at a time, and wait until each runs."""
    def one(name: str) -> None:
        answer = client.post("/api/instances", json={
            "source": {"kind": "compose", "compose": COMPOSE}, "name": name})
        answer.raise_for_status()
        op_id = answer.json()["operation"]["id"]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            op = client.get(f"/api/operations/{op_id}").json()
            if op["state"] == "succeeded":
                return
            if op["state"] != "running":
                raise SystemExit(f"install of {name} ended {op['state']}: {op['error']}")
            time.sleep(0.2)
        raise SystemExit(f"install of {name} did not finish")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, names))


def statuses(client: httpx.Client) -> dict[str, str]:
    """Return every instance's status."""
    return {i["name"]: i["status"] for i in client.get("/api/instances").json()}


def engine_up(client: httpx.Client) -> bool:
    """Tell whether the health answer says the engine answers."""
    return bool(client.get("/api/health").json()["engine"])


def one_round(client: httpx.Client, proxy: SocketProxy, names: list[str],
              index: int, *, hang: bool = False) -> dict[str, float]:
    """Cut (or freeze), stop some instances behind StackHub's back, restore; return the four
    figures."""
    until(lambda: engine_up(client) and set(statuses(client).values()) == {"running"}, 60)
    cut = time.perf_counter()
    if hang:
        proxy.freeze()
    else:
        proxy.cut(linger=LINGER)
    health = until(lambda: not engine_up(client))
    unknown = max(health, time.perf_counter() - cut + until(
        lambda: set(statuses(client).values()) == {"unknown"}))
    stopped = {n for i, n in enumerate(names) if (i + index) % 3 == 0}
    docker("stop", "--time", "1", *[f"stackhub-{n}-web-1" for n in sorted(stopped)])
    want = {n: "stopped" if n in stopped else "running" for n in names}
    if hang:
        proxy.thaw()
    else:
        proxy.start()
    back = time.perf_counter()
    health_back = until(lambda: engine_up(client))
    exact = max(health_back, time.perf_counter() - back + until(
        lambda: statuses(client) == want))
    docker("start", *[f"stackhub-{n}-web-1" for n in sorted(stopped)])
    return {"detect_health": health, "detect_unknown": unknown, "back_health": health_back,
            "back_exact": exact}


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hang-rounds", type=int, default=3)
    parser.add_argument("--log", type=Path, help="Keep the server's log in this file.")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="stackhub-bench-outage-"))
    proxy = SocketProxy(root / "docker.sock")
    proxy.start()
    port = 18766
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKHUB_FAULT")}
    env.update({"STACKHUB_DATA_DIR": str(root / "data"), "STACKHUB_URL": f"http://127.0.0.1:{port}",
                "DOCKER_HOST": f"unix://{proxy.path}"})
    log = (root / "server.log").open("wb")
    server = subprocess.Popen([*CLI, "serve", "--port", str(port)], env=env, stdout=log,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    names = [f"bench-out-{i:03d}" for i in range(args.instances)]
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.1)
        token = (root / "data" / "secrets" / "admin-token").read_text().strip()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            began = time.perf_counter()
            install_all(client, names)
            print(f"{len(names)} instances installed in {time.perf_counter() - began:.1f} s")
            for hang, rounds, what in ((False, args.rounds, "socket gone"),
                                       (True, args.hang_rounds, "engine hung")):
                rows: list[dict[str, float]] = []
                for index in range(rounds):
                    row = one_round(client, proxy, names, index, hang=hang)
                    rows.append(row)
                    print(f"{what} round {index + 1}: engine down reported "
                          f"{row['detect_health']:.3f} s, all unknown "
                          f"{row['detect_unknown']:.3f} s | engine up reported "
                          f"{row['back_health']:.3f} s, statuses exact {row['back_exact']:.3f} s")
                if not rows:
                    continue
                worst: dict[str, Any] = {k: max(r[k] for r in rows) for k in rows[0]}
                print(f"worst of {len(rows)} with {len(names)} instances: {what} -> reported "
                      f"{worst['detect_unknown']:.3f} s (target 2 s); engine answering -> "
                      f"exact statuses {worst['back_exact']:.3f} s (target 2 s)")
    finally:
        proxy.thaw()
        proxy.cut()
        proxy.start()
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(20)
        for name in names:
            subprocess.run(["docker", "compose", "-p", f"stackhub-{name}", "down", "-v",
                            "--timeout", "1"], capture_output=True, check=False, timeout=120)
        proxy.cut()
        log.close()
        if args.log is not None:
            shutil.copyfile(root / "server.log", args.log)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
