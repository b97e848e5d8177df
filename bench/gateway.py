"""Measure the gateway: requests per second and latency through Caddy vs straight to the app.

Caddy runs the way StackHub runs it (Debian's caddy as a child, admin API on a unix socket,
the config rendered by `stackhub.adapters.caddy.render` from a spec: the same routes StackHub
loads, with the identity-header deletion every app route carries). Two upstreams, each measured
straight and through the gateway in the same run, rounds interleaved:

- ``app``: a small app container (busybox httpd from the test image, published on 127.0.0.1
  through Docker, as StackHub publishes apps); busybox closes every connection, so this is
  what a simple app sees;
- ``fast``: a second Caddy answering a fixed body on loopback (keep-alive, microseconds per
  request), which isolates the gateway's own cost;
- ``kept`` (only when asked in ``--targets``): a small app that keeps its connections open, in
  a container of its own on the same network (the host's Caddy binary answering a fixed body,
  run in StackHub's sandbox image), dialled at its container address with its published port
  as the fallback, as StackHub renders it: most apps keep connections open, busybox does not.

For each, wrk (``apt-get install -y wrk``) measures: straight to the port (HTTP), through the
gateway over HTTPS (what browsers use; the internal CA, ``Host`` set to the app's name), and
through the gateway over plain HTTP (an extra listener of the bench only, to separate TLS from
proxying), and for ``fast`` and ``app-ip`` through a bare Caddy proxy (one ``reverse_proxy``
handler, nothing of StackHub's config: Caddy's own cost). The figures: requests/s, p50 and p99
latency, throughput ratio gateway/direct and added p99. Then: 50 routes loaded, one more added with
one ``POST /load``, and the time until the new name answers over HTTPS.

Direct is plain HTTP (an app's port has no TLS); gateway HTTPS is TLS termination + proxying.
Each run also prints the CPU time (user + system) per request of the gateway, the upstreams
and, for ``app``, the container's httpd and its port's docker-proxy. ``--pin`` puts wrk on
CPU 1 and the servers on CPU 0 for every run (direct and gateway alike); ``app-ip`` is the
app dialled at its container address with its published port as the fallback (no docker-proxy:
what StackHub renders by default), also compared with ``app`` direct, and ``app`` through the
gateway is ``STACKHUB_GATEWAY_DIAL=port``; each mode reaches the
app on a port of its own (TIME-WAIT, see `APP_PORTS`); ``--transport`` sets a
reverse_proxy transport on the app routes (experiments only).

Targets from issue 11: gateway throughput >= 80 % of direct, added p99 < 2 ms; adding a
domain to a box with 50 routes: one reload, under 1 s to serve. wrk keeps every connection
busy, so its p99 is mostly queueing: on a 2-core box shared by wrk, Caddy and the app it is
the throughput gap plus scheduling noise, not what the gateway adds to one request.
``--pace-ms MS`` makes each connection wait MS ms before each request (wrk's ``delay()``),
a load the app serves without a queue (e.g. 8 connections and 5 ms: ~1500 req/s, about half
of what busybox serves here); its p50 and p99 are the latency the gateway adds.
Run: .venv/bin/python bench/gateway.py [--seconds 10] [--rounds 2] [--connections 32] [--pin]
     [--pace-ms MS]
     [--targets app,fast,app-ip,kept] [--skip-reload] [--transport JSON] [--route-only N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import ssl
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from stackhub.adapters import caddy

IMAGE = "stackhub-test/web:1"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Figures:
    """One wrk run."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    cpu_us: dict[str, float] = field(default_factory=dict)
    """CPU time (user + system) per request of each measured process, in microseconds."""


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not found:
        raise ValueError(text)
    return float(found.group(1)) * UNITS[found.group(2)]


PACED = """\
function delay()
  return {ms}
end
"""


def wrk(url: str, *, host: str | None, seconds: int, connections: int,
        cpu: int | None = None, pace_ms: int = 0) -> Figures:
    """Run wrk once (on CPU `cpu` if given) and parse requests/s, p50, p99 and errors.

    `pace_ms`: each connection waits that long before each request (wrk's `delay()`), so
    the load is paced below what the app can serve and latency is not queueing.
    """
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    script: list[str] = []
    if pace_ms:
        lua = Path(tempfile.gettempdir()) / f"stackhub-bench-pace-{pace_ms}.lua"
        lua.write_text(PACED.format(ms=pace_ms))
        script = ["-s", str(lua)]
    args = [*pin, "wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s",
            "--latency", *script, url]
    if host:
        args[len(pin) + 1:len(pin) + 1] = ["-H", f"Host: {host}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True,
                         timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)",
                    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"):
        found = re.search(pattern, out)
        if found:
            errors += sum(int(g) for g in found.groups())
    return Figures(rps, p50, p99, errors, requests)


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True,
                          timeout=120).stdout.strip()


APP_PORTS = {"app": 80, "app-s": 81, "app-h": 82, "app-ip": 83, "app-ip-s": 84, "app-ip-h": 85,
             "app-ip-b": 86}
"""The app's httpd listens on one container port per (target, mode): busybox closes every
connection, so each run leaves thousands of TIME-WAIT sockets toward its destination (held
60 s; the host reuses them only on loopback): one destination per mode keeps a run from
exhausting the next run's ephemeral ports, which made connect() cost milliseconds of CPU."""
PUBLISHED = ("app", "app-s", "app-h")
"""The ports published on 127.0.0.1 through Docker (the others are dialled at the container)."""


def start_app(name: str) -> tuple[dict[str, int], str]:
    """Start the small app container on its own network; return (host ports, network)."""
    ports = {key: free_port() for key in PUBLISHED}
    network = f"{name}-net"
    for attempt in range(20):
        subnet = f"10.{240 + attempt % 10}.{secrets.randbelow(250)}.0/28"
        try:
            docker("network", "create", "--subnet", subnet, network)
            break
        except subprocess.CalledProcessError:
            continue
    else:
        raise SystemExit("no free subnet for the bench network")
    publish = [arg for key in PUBLISHED
               for arg in ("-p", f"127.0.0.1:{ports[key]}:{APP_PORTS[key]}")]
    daemons = " && ".join(f"httpd -p {port} -h /www" for port in APP_PORTS.values())
    docker("run", "-d", "--name", name, "--network", network, *publish, IMAGE, "sh", "-c",
           f"echo hello >/www/index.html && {daemons} && exec sleep 1000000")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if all(httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200
                   for port in ports.values()):
                return ports, network
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the app container did not answer")


KEPT_PORT = 8080


def start_kept(name: str, network: str, binary: str, home: Path) -> tuple[str, int]:
    """Start the keep-alive app container (the host's Caddy answering a fixed body, in the
    sandbox image, which has its libraries) on `network`; return (its address, host port)."""
    from stackhub.adapters.sandbox import image_ref

    image = image_ref()
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True,
                      check=False).returncode != 0:
        raise SystemExit(f"the kept target needs StackHub's sandbox image {image}: start the "
                         "server once (it builds it) or leave `kept` out of --targets")
    config = home / "kept.json"
    config.write_text(json.dumps({"admin": {"disabled": True}, "apps": {"http": {"servers": {
        "kept": {"listen": [f":{KEPT_PORT}"], "automatic_https": {"disable": True},
                 "routes": [{"handle": [{"handler": "static_response",
                                         "body": "hello\n"}]}]}}}}}))
    config.chmod(0o644)
    port = free_port()
    docker("run", "-d", "--name", f"{name}-kept", "--network", network, "-p",
           f"127.0.0.1:{port}:{KEPT_PORT}", "-e", "HOME=/tmp", "-e", "XDG_DATA_HOME=/tmp",
           "-e", "XDG_CONFIG_HOME=/tmp", "-v", f"{binary}:/usr/local/bin/kept:ro", "-v",
           f"{config}:/etc/kept.json:ro", "--entrypoint", "/usr/local/bin/kept", image, "run",
           "--config", "/etc/kept.json")
    address = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                     f"{name}-kept")
    answering(f"http://{address}:{KEPT_PORT}/", 30, "the kept app container did not answer")
    return address, port


def answering(url: str, seconds: float, failure: str) -> None:
    """Wait until `url` answers 200; exit with `failure` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(failure)


def time_wait(address: str) -> int:
    """Count the host's TIME-WAIT sockets toward `address` (host:port)."""
    out = subprocess.run(["ss", "-Htan", "state", "time-wait", "dst", address],
                         capture_output=True, text=True, check=False).stdout
    return len(out.splitlines())


def start_fast(home: Path, binary: str, upstream: str | None = None,
               file: str = "bare.json") -> tuple[int, subprocess.Popen[bytes]]:
    """A second Caddy answering a fixed body on loopback (or a bare proxy to `upstream`)."""
    port = free_port()
    handler: dict[str, Any] = {"handler": "static_response", "body": "hello\n"}
    if upstream is not None:  # one reverse_proxy handler, nothing of StackHub's config
        handler = {"handler": "reverse_proxy", "upstreams": [{"dial": upstream}]}
    config = {"admin": {"disabled": True}, "apps": {"http": {"servers": {"fast": {
        "listen": [f"127.0.0.1:{port}"], "automatic_https": {"disable": True},
        "routes": [{"handle": [handler]}]}}}}}
    path = home / (file if upstream else "fast.json")
    path.write_text(json.dumps(config))
    proc = subprocess.Popen([binary, "run", "--config", str(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={"HOME": str(home),
                                                            "XDG_DATA_HOME": str(home / "fd"),
                                                            "XDG_CONFIG_HOME": str(home / "fc")})
    answering(f"http://127.0.0.1:{port}/", 10, "the fast upstream did not start")
    return port, proc


def spec_for(gateway: caddy.CaddyGateway, https: int, http: int,
             upstreams: dict[str, str], extra: int = 0) -> caddy.GatewaySpec:
    # the container-address routes carry the published port as their fallback, as StackHub
    # renders them by default (`proxy/dial.py`): measured with its config, not a bare dial
    fallbacks = {"app-ip": upstreams.get("app"), "kept": upstreams.get("kept-port")}
    routes = [caddy.Route(id=f"app-{name}", hosts=(f"{name}.bench.lan",), upstream=up,
                          fallback=next((f for k, f in fallbacks.items()
                                         if name.startswith(k) and name != "kept-port"), None))
              for name, up in upstreams.items()]
    # wrk's SNI is the URL's host: `localhost` (it resolves without /etc/hosts) needs a
    # certificate, and Caddy manages certificates for the hosts its routes match
    routes.append(caddy.Route(id="sni", hosts=("localhost",), upstream=None, page="bench"))
    fast = upstreams["fast"]
    routes += [caddy.Route(id=f"app-r{i}", hosts=(f"r{i}.bench.lan",), upstream=fast)
               for i in range(extra)]
    hosts = tuple(h for r in routes for h in r.hosts)
    return caddy.GatewaySpec(admin=gateway.listen, http_port=http, https_port=https,
                             storage=gateway.storage, routes=tuple(routes),
                             internal=hosts)


def with_plain(config: dict[str, Any], port: int) -> dict[str, Any]:
    """Add a plain-HTTP listener with the same routes (the bench's only change)."""
    server = config["apps"]["http"]["servers"][caddy.SERVER]
    config["apps"]["http"]["servers"]["bench-plain"] = {
        "listen": [f"127.0.0.1:{port}"], "routes": server["routes"],
        "automatic_https": {"disable": True}}
    return config


async def serve_time(gateway: caddy.CaddyGateway, https: int, http: int,
                     upstreams: dict[str, str]) -> tuple[float, float]:
    """Load 50 routes, add the 51st with one load; return (load s, load-to-serving s)."""
    await gateway.load(caddy.render(spec_for(gateway, https, http, upstreams, extra=50)))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    new = "r50.bench.lan"
    started = time.perf_counter()
    await gateway.load(caddy.render(spec_for(gateway, https, http, upstreams, extra=51)))
    loaded = time.perf_counter() - started
    async with httpx.AsyncClient(verify=context, timeout=5) as client:
        while True:
            try:
                answer = await client.get(f"https://127.0.0.1:{https}/", headers={"Host": new},
                                          extensions={"sni_hostname": new})
                if answer.status_code == 200:
                    return loaded, time.perf_counter() - started
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > 30:
                raise SystemExit(f"{new} did not serve within 30 s")
            await asyncio.sleep(0.01)


def _app_pids(name: str, ports: dict[str, int]) -> dict[str, list[int]]:
    """Return the app container's processes and its ports' docker-proxies, seen from the host."""
    wanted = {str(port) for port in ports.values()}
    proxies = [proc.pid for proc in psutil.process_iter(["name", "cmdline"])
               if proc.info["name"] == "docker-proxy"
               and wanted & set(proc.info["cmdline"] or [])]
    return {"app": [-int(docker("inspect", "-f", "{{.State.Pid}}", name))],
            "docker-proxy": proxies}


def _container_cpu(pid: int) -> float:
    """Return the CPU seconds of the whole container whose main process is `pid` (its cgroup:
    busybox httpd forks one process per connection)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpuacct" in controllers.split(","):
            usage = Path("/sys/fs/cgroup/cpuacct") / path.lstrip("/") / "cpuacct.usage"
            return int(usage.read_text()) / 1e9
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system + times.children_user + times.children_system)


def _cpu(pids: list[int]) -> float:
    """Return the CPU time (user + system) of processes; a negative pid names a container."""
    total = 0.0
    for pid in pids:
        if pid < 0:
            total += _container_cpu(-pid)
            continue
        times = psutil.Process(pid).cpu_times()
        total += float(times.user + times.system + times.children_user +
                       times.children_system)
    return total


async def _handshake(port: int, name: str, context: ssl.SSLContext) -> bool:
    """Tell whether a TLS handshake for `name` succeeds (its certificate exists)."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                  server_hostname=name)
    except (OSError, ssl.SSLError):
        return False
    writer.close()
    return True


async def route_change(gateway: caddy.CaddyGateway, https: int, http: int,
                       upstreams: dict[str, str], extra: int) -> dict[str, float]:
    """Add route r<extra-1> to `extra - 1` loaded ones; return the phases in ms (and CPU)."""
    assert gateway.process is not None and gateway.process.proc is not None
    pid = gateway.process.proc.pid
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    new = f"r{extra - 1}.bench.lan"
    started, own_cpu, caddy_cpu = time.perf_counter(), time.process_time(), _cpu([pid])
    config = caddy.render(spec_for(gateway, https, http, upstreams, extra=extra))
    rendered, own_render = time.perf_counter(), time.process_time()
    await gateway.load(config)
    loaded, own_load, caddy_load = time.perf_counter(), time.process_time(), _cpu([pid])
    while not await _handshake(https, new, context):
        if time.perf_counter() - started > 30:
            raise SystemExit(f"{new} had no certificate within 30 s")
        await asyncio.sleep(0.005)
    shaken = time.perf_counter()
    async with httpx.AsyncClient(verify=context, timeout=5) as client:
        while (await client.get(f"https://127.0.0.1:{https}/", headers={"Host": new},
                                extensions={"sni_hostname": new})).status_code != 200:
            await asyncio.sleep(0.005)
    served, caddy_end = time.perf_counter(), _cpu([pid])
    return {"render": (rendered - started) * 1000, "render_cpu": (own_render - own_cpu) * 1000,
            "load": (loaded - rendered) * 1000, "load_own_cpu": (own_load - own_render) * 1000,
            "load_caddy_cpu": (caddy_load - caddy_cpu) * 1000,
            "to_handshake": (shaken - loaded) * 1000, "to_200": (served - shaken) * 1000,
            "total": (served - started) * 1000, "caddy_cpu_total": (caddy_end - caddy_cpu) * 1000}


async def route_only(repeat: int, home: Path, binary: str, upstreams: dict[str, str],
                     https: int, http: int) -> None:
    """Measure only the route change, `repeat` times, phase by phase (no wrk, no app)."""
    gateway = caddy.CaddyGateway(home / "gateway", binary=binary)

    async def reapply() -> None:
        return None

    await gateway.start(reapply)
    try:
        await gateway.load(caddy.render(spec_for(gateway, https, http, upstreams, extra=50)))
        await asyncio.sleep(2.0)  # the 50 names' internal certificates issued
        runs = []
        for i in range(repeat):
            figures = await route_change(gateway, https, http, upstreams, extra=51 + i)
            runs.append(figures)
            print("  " + "  ".join(f"{k} {v:.0f}" for k, v in figures.items()), flush=True)
        print(f"\nroute added to {50}+ loaded, medians of {repeat} (ms):")
        for key in runs[0]:
            print(f"  {key:<16} {statistics.median(r[key] for r in runs):8.1f}")
    finally:
        await gateway.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--pace-ms", type=int, default=0, metavar="MS",
                        help="each wrk connection waits MS ms before each request: latency at "
                        "a paced load (throughput is then set by the pace, not measured)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--pin", action="store_true",
                        help="wrk on CPU 1; the gateway, the upstreams and the app on CPU 0")
    parser.add_argument("--targets", default="app,app-ip,fast",
                        help="upstreams to measure, comma-separated: app (the gateway dials "
                             "the published port: STACKHUB_GATEWAY_DIAL=port), app-ip (the "
                             "container address with the port as fallback: the default), fast, "
                             "kept (a keep-alive app in a container, dialled as app-ip)")
    parser.add_argument("--skip-reload", action="store_true",
                        help="skip the 50-routes reload figure")
    parser.add_argument("--transport", default="",
                        help="experiment: a reverse_proxy transport (JSON) set on app routes")
    parser.add_argument("--gateway-nice", type=int, default=0, metavar="N",
                        help="experiment: run the gateway's Caddy at nice N (e.g. -5: ahead "
                             "of the app and wrk when both want a core)")
    parser.add_argument("--route-only", type=int, default=0, metavar="N",
                        help="only measure adding a route to 50, N times, phase by phase")
    options = parser.parse_args()
    binary = caddy.caddy_binary()
    if binary is not None and options.route_only:
        home = Path(tempfile.mkdtemp(prefix="stackhub-bench-gw-"))
        only_port, only_proc = start_fast(home, binary)
        try:
            asyncio.run(route_only(options.route_only, home, binary,
                                   {"fast": f"127.0.0.1:{only_port}"}, free_port(),
                                   free_port()))
        finally:
            only_proc.terminate()
            only_proc.wait(10)
            shutil.rmtree(home, ignore_errors=True)
        return
    if binary is None or shutil.which("wrk") is None:
        raise SystemExit("needs caddy and wrk (apt-get install -y caddy wrk)")
    home = Path(tempfile.mkdtemp(prefix="stackhub-bench-gw-"))
    name = f"stackhub-bench-gw-{secrets.token_hex(3)}"
    fast_proc: subprocess.Popen[bytes] | None = None
    bare_proc: subprocess.Popen[bytes] | None = None
    bare_ip_proc: subprocess.Popen[bytes] | None = None
    network = None
    try:
        app_ports, network = start_app(name)
        fast_port, fast_proc = start_fast(home, binary)
        upstreams = {key: f"127.0.0.1:{port}" for key, port in app_ports.items()}
        upstreams["fast"] = f"127.0.0.1:{fast_port}"
        address = docker("inspect", "-f",
                         "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name)
        behind = {key: f"{address}:{port}" for key, port in APP_PORTS.items()}
        if "app-ip" in options.targets.split(","):  # the container's own address, no proxy
            upstreams.update({key: dial for key, dial in behind.items()
                              if key.startswith("app-ip")})
        kept: dict[str, list[int]] = {}
        if "kept" in options.targets.split(","):
            kept_address, kept_port = start_kept(name, network, binary, home)
            upstreams["kept"] = f"{kept_address}:{KEPT_PORT}"
            upstreams["kept-port"] = f"127.0.0.1:{kept_port}"
            kept["kept"] = [-int(docker("inspect", "-f", "{{.State.Pid}}", f"{name}-kept"))]
        https, http, plain = free_port(), free_port(), free_port()
        bare_port, bare_proc = start_fast(home, binary, upstreams["fast"])
        bares = {"fast": bare_port}
        if "app-ip-b" in upstreams:  # Caddy's own floor for an app that closes connections
            bares["app-ip"], bare_ip_proc = start_fast(home, binary, upstreams["app-ip-b"],
                                                      "bare-ip.json")
        asyncio.run(run(options, home, binary, upstreams, https, http, plain,
                        {"fast": [fast_proc.pid], "bare": [bare_proc.pid],
                         **({"bare-ip": [bare_ip_proc.pid]} if bare_ip_proc else {}),
                         **_app_pids(name, app_ports), **kept}, name, bares, behind))
    finally:
        for proc in (fast_proc, bare_proc, bare_ip_proc):
            if proc is not None:
                proc.terminate()
                proc.wait(10)
        subprocess.run(["docker", "rm", "-f", name, f"{name}-kept"], capture_output=True,
                       check=False)
        if network:
            subprocess.run(["docker", "network", "rm", network], capture_output=True,
                           check=False)
        shutil.rmtree(home, ignore_errors=True)


def memory(pid: int) -> str:
    """Say a process's resident memory now and at its peak (from /proc)."""
    found = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                 .splitlines() if line.startswith(("VmRSS", "VmHWM")))
    return f"resident {found.get('VmRSS', '?').strip()}, peak {found.get('VmHWM', '?').strip()}"


def pin(pids: dict[str, list[int]], container: str | None) -> None:
    """Put the servers (all their threads) and the app container on CPU 0."""
    for pid in (p for group in pids.values() for p in group if p > 0):
        subprocess.run(["taskset", "-a", "-cp", "0", str(pid)], check=True,
                       capture_output=True)
    if container:
        docker("update", "--cpuset-cpus", "0", container)


def patch(config: dict[str, Any], transport: dict[str, Any] | None) -> dict[str, Any]:
    """Apply the bench's experiment (an upstream transport on every app route)."""
    if transport is None:
        return config
    for route in config["apps"]["http"]["servers"][caddy.SERVER]["routes"]:
        for handler in route.get("handle", []):
            for step in handler.get("routes", []):
                for inner in step.get("handle", []):
                    if inner.get("handler") == "reverse_proxy" and "transport" not in inner:
                        inner["transport"] = transport
    return config


def renice(pid: int, nice: int) -> None:
    """Set the niceness of every thread of `pid` (Linux: niceness is per thread)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.setpriority(os.PRIO_PROCESS, int(task.name), nice)


async def run(options: argparse.Namespace, home: Path, binary: str, upstreams: dict[str, str],
              https: int, http: int, plain: int, procs: dict[str, list[int]],
              container: str | None, bares: dict[str, int], behind: dict[str, str]) -> None:
    """Measure every target in every mode, rounds interleaved; `behind` maps an app upstream
    to the container address its connections finally reach (for the TIME-WAIT count)."""
    gateway = caddy.CaddyGateway(home / "gateway", binary=binary)

    async def reapply() -> None:
        return None

    await gateway.start(reapply)
    try:
        assert gateway.process is not None and gateway.process.proc is not None
        procs = {"gateway": [gateway.process.proc.pid], **procs}
        if options.gateway_nice:
            renice(gateway.process.proc.pid, options.gateway_nice)
            print(f"gateway at nice {options.gateway_nice}", flush=True)
        if options.pin:
            pin(procs, container)
            print("pinned: gateway, upstreams and app on CPU 0, wrk on CPU 1", flush=True)
        transport = json.loads(options.transport) if options.transport else None
        await gateway.load(patch(with_plain(caddy.render(spec_for(gateway, https, http,
                                                                  upstreams)), plain),
                                 transport))
        await asyncio.sleep(1.0)  # internal certificates issued
        print(f"load average at start: {' '.join(f'{v:.1f}' for v in os.getloadavg())}",
              flush=True)
        results: dict[str, list[Figures]] = {}
        targets = [t for t in upstreams if t in options.targets.split(",")]
        for _ in range(options.rounds):
            for target in targets:
                up = upstreams[target]
                # each gateway mode has its own route (and app port) when the bench made one
                https_host = f"{target}-s" if f"{target}-s" in upstreams else target
                http_host = f"{target}-h" if f"{target}-h" in upstreams else target
                modes = [("direct", f"http://{up}/", None),
                         ("gateway-https", f"https://localhost:{https}/",
                          f"{https_host}.bench.lan"),
                         ("gateway-http", f"http://127.0.0.1:{plain}/", f"{http_host}.bench.lan")]
                if target in bares:  # Caddy's own proxy cost, without StackHub's config
                    modes.append(("bare-proxy-http", f"http://127.0.0.1:{bares[target]}/",
                                  None))
                keys = {"direct": target, "gateway-https": https_host,
                        "gateway-http": http_host, "bare-proxy-http": f"{target}-b"}
                for label, url, header in modes:
                    key = keys.get(label, "")
                    waiting = time_wait(behind.get(key, upstreams.get(key, up)))
                    before = {k: _cpu(pids) for k, pids in procs.items()}
                    figures = await asyncio.to_thread(
                        wrk, url, host=header, seconds=options.seconds,
                        connections=options.connections, cpu=1 if options.pin else None,
                        pace_ms=options.pace_ms)
                    count = max(figures.requests, 1)
                    figures.cpu_us = {k: (_cpu(pids) - before[k]) * 1e6 / count
                                      for k, pids in procs.items()}
                    results.setdefault(f"{target}/{label}", []).append(figures)
                    cpu = " ".join(f"{k} {v:.0f}" for k, v in figures.cpu_us.items())
                    print(f"  {target:<5} {label:<14} {figures.rps:>9.0f} req/s  p50 "
                          f"{figures.p50_ms:6.2f} ms  p99 {figures.p99_ms:6.2f} ms  errors "
                          f"{figures.errors}  CPU us/req: {cpu}  (TIME-WAIT toward its "
                          f"upstream before: {waiting})", flush=True)
        print(f"load average at end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
        print(f"gateway memory (GOGC {caddy.gateway_gogc()}): {memory(procs['gateway'][0])}")
        print("\nmedians over rounds (same run; CPU = user + system per request, us):")
        for target in targets:
            direct = results[f"{target}/direct"]
            d_rps = statistics.median(f.rps for f in direct)
            d_p50 = statistics.median(f.p50_ms for f in direct)
            d_p99 = statistics.median(f.p99_ms for f in direct)
            print(f"{target}: direct {d_rps:.0f} req/s, p50 {d_p50:.2f} ms, p99 {d_p99:.2f} ms; "
                  f"CPU {_cpu_text(direct)}")
            for label in ("gateway-https", "gateway-http", "bare-proxy-http"):
                runs = results.get(f"{target}/{label}", [])
                if not runs:
                    continue
                rps = statistics.median(f.rps for f in runs)
                p50 = statistics.median(f.p50_ms for f in runs)
                p99 = statistics.median(f.p99_ms for f in runs)
                print(f"  {label}: {rps:.0f} req/s = {rps / d_rps:.0%} of direct; p50 "
                      f"{p50:.2f} ms (added {p50 - d_p50:+.2f}); p99 {p99:.2f} ms (added "
                      f"{p99 - d_p99:+.2f}); errors {sum(f.errors for f in runs)}; "
                      f"CPU {_cpu_text(runs)}")
                published = results.get("app/direct") if target == "app-ip" else None
                if published:  # StackHub's default dial against the app's published port
                    p_rps = statistics.median(f.rps for f in published)
                    p_p99 = statistics.median(f.p99_ms for f in published)
                    print(f"    against app direct (the published port): {rps / p_rps:.0%} "
                          f"of its {p_rps:.0f} req/s; p99 added {p99 - p_p99:+.2f} ms")
        if not options.skip_reload:
            loaded, serving = await serve_time(gateway, https, http, upstreams)
            print(f"\n50 routes + 1 added: one POST /load took {loaded * 1000:.0f} ms; the new "
                  f"name served over HTTPS {serving * 1000:.0f} ms after the load began")
    finally:
        await gateway.stop()


def _cpu_text(runs: list[Figures]) -> str:
    return ", ".join(f"{k} {statistics.median(f.cpu_us[k] for f in runs):.0f}"
                     for k in runs[0].cpu_us)


if __name__ == "__main__":
    main()
