"""Run an app's store scripts (Umbrel ``exports.sh`` with logic, ``hooks/pre-start``) sandboxed.

Nothing here runs a store script on the host: the scripts, StackHub's emulations of the Umbrel
commands they call and the data those need are written into a staging folder that is mounted
read-only into a throwaway sandbox container (adapters/sandbox.py); the instance's data folder
is the only writable mount, at its own host path so the values scripts compute from
``APP_DATA_DIR`` are the paths Compose mounts. One run per install step: source
``exports.sh`` inside a function, run the pre-start hook, source ``exports.sh`` again (a hook
may write what it reads), then print the environment NUL-separated on the data channel
(stdout; the scripts' own output goes to stderr, the log). The host parses that as data
(`parse_env`), never evaluates it, and keeps only new names that are identifiers and not
StackHub's or Compose's own.

Emulations (on the sandbox's PATH and at ``$UMBREL_ROOT/scripts/app``): ``derive_entropy``
(HMAC-SHA256 of its argument with a key derived for this instance from the installation's
seed in ``secrets/``; the seed itself never enters the sandbox), ``hostname -I`` (the box's
addresses, given), ``app ls-installed`` (given), ``app compose <id> ... up ... tor`` (no-op),
``docker ps -f name=...`` (only this app's containers, given). Anything else of ``app`` or
``docker`` is refused with a clear message, except in hook runs given the compose proxy
(after the exported values were checked), where ``app compose``/``app start|stop|restart``/
``docker exec`` go to StackHub, which answers outside the sandbox, for the app's own services
only (apps/hookproxy.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from stackhub import fsutil
from stackhub.adapters import sandbox_proxy
from stackhub.adapters.sandbox import Limits, Mount, RunResult, RunSpec, SandboxEngine
from stackhub.errors import ScriptFailed
from stackhub.platform import RESERVED_PREFIXES

EXPORTS = "exports.sh"
PRE_START = "hooks/pre-start"
POST_INSTALL = "hooks/post-install"
POST_START = "hooks/post-start"
HOOKS = (PRE_START, POST_INSTALL, POST_START)
PROXY_CLIENT = "stackhub-proxy"
HOOKS_LOG = "hooks.log"
"""The instance's log of post-install/post-start hook runs and their proxied requests."""
HOOKS_LOG_LIMIT = 256 * 1024
SEED_FILE = "umbrel-seed"
STAGE = "/stackhub"
MAX_VARS = 2000
MAX_VALUE = 64 * 1024
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
BASE_NAMES = frozenset({"PATH", "HOME", "PWD", "OLDPWD", "SHLVL", "_", "HOSTNAME", "TERM",
                        "LANG", "LC_ALL", "IFS", "BASH_ENV", "ENV", "SHELL", "USER"})
"""Shell or sandbox names never taken from a script's environment."""


@dataclass
class ScriptContext:
    """What one run of an instance's scripts is given."""

    instance: str
    app_id: str
    data_dir: Path
    env: dict[str, str]
    installed: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    protected: frozenset[str] = frozenset()
    """Names a script may not change (platform values and the app's parameters)."""


@dataclass
class ScriptOutcome:
    """What the scripts exported (data) and what they printed (for the operation's log)."""

    exports: dict[str, str]
    log: str
    skipped: list[str] = field(default_factory=list)


def parse_env(data: bytes, given: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Read ``env -0`` output as data: new NAME=value pairs, and what was skipped and why.

    Hostile output is expected: items without ``=``, names that are not identifiers, values
    that are not UTF-8, contain a newline or are over MAX_VALUE, and more than MAX_VARS items
    are skipped (named in the second list), never evaluated. Names the sandbox or StackHub set
    (given, shell names, ``COMPOSE_*``/``DOCKER_*``) are not taken.
    """
    found: dict[str, str] = {}
    skipped: list[str] = []
    items = data.split(b"\0")
    if items and items[-1] == b"":
        items.pop()
    for index, item in enumerate(items):
        if index >= MAX_VARS:
            skipped.append(f"{len(items) - MAX_VARS} more variables (over {MAX_VARS})")
            break
        raw_name, sep, raw_value = item.partition(b"=")
        shown = raw_name[:40].decode("utf-8", "replace")
        if not sep:
            skipped.append(f"{shown!r}: not NAME=value")
            continue
        try:
            name = raw_name.decode("ascii")
        except UnicodeDecodeError:
            skipped.append(f"{shown!r}: not a variable name")
            continue
        if not _NAME.match(name):
            skipped.append(f"{shown!r}: not a variable name")
            continue
        if name in BASE_NAMES or name.startswith(RESERVED_PREFIXES) or \
                name.startswith("STACKHUB_"):
            continue
        if len(raw_value) > MAX_VALUE:
            skipped.append(f"{name}: value over {MAX_VALUE} bytes")
            continue
        try:
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            skipped.append(f"{name}: value is not UTF-8 text")
            continue
        if "\n" in value or "\r" in value:
            skipped.append(f"{name}: value spans lines")
            continue
        if given.get(name) == value:
            continue  # unchanged input, not an export
        found[name] = value
    return found, skipped


def instance_key(seed: bytes, instance: str, app_id: str) -> str:
    """Derive the key ``derive_entropy`` uses for one instance of one app (hex)."""
    return hmac.new(seed, f"stackhub/umbrel-app/{app_id}/{instance}".encode(),
                    hashlib.sha256).hexdigest()


def derive_entropy(key: str, identifier: str) -> str:
    """Compute what the sandbox's ``derive_entropy IDENTIFIER`` prints (for tests and docs)."""
    return hmac.new(key.encode(), identifier.encode(), hashlib.sha256).hexdigest()


def load_seed(secrets_dir: Path) -> bytes:
    """Return the installation's script seed, creating it (0600) on first use."""
    path = secrets_dir / SEED_FILE
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:  # created exclusively: two installs at once never use two different seeds
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    text = path.read_text().strip()
    try:
        return bytes.fromhex(text) if len(text) == 64 else _bad_seed(path)
    except ValueError:
        return _bad_seed(path)


def _bad_seed(path: Path) -> bytes:
    raise ScriptFailed(f"{path} is not a 64-digit hex seed; StackHub keeps it as it is, since "
                       "replacing it would change every app's derived secrets: restore it "
                       "from a backup")


def host_addresses() -> list[str]:
    """Return this box's LAN address (the one a default route uses), as ``hostname -I`` would."""
    found: list[str] = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        found.append(str(probe.getsockname()[0]))
    except OSError:
        pass
    finally:
        probe.close()
    return found or ["127.0.0.1"]


_DRIVER = r"""#!/bin/bash
# StackHub's store-script driver (runs only inside the sandbox). Scripts' output -> stderr (the
# log); the environment after the scripts -> fd 3 (stdout, the data channel), NUL-separated.
exec 3>&1 1>&2
mode="$1"
# Umbrel keeps an app's store files in its data folder (app-data/<id>): hooks find their
# folder from their own path, so the scripts are copied there, as Umbrel has them.
cd "$APP_DATA_DIR" || exit 97
for f in exports.sh hooks/pre-start hooks/post-install hooks/post-start; do
  if [ -f "/stackhub/app/$f" ]; then
    mkdir -p "$(dirname "$APP_DATA_DIR/$f")" && cp "/stackhub/app/$f" "$APP_DATA_DIR/$f" || exit 97
  fi
done
stackhub_exports() {
  if [ -f /stackhub/app/exports.sh ]; then
    local EXPORTS_APP_ID="$APP_ID" EXPORTS_APP_DIR="$APP_DATA_DIR"
    local EXPORTS_TOR_DATA_DIR="$APP_DATA_DIR/tor"
    # shellcheck disable=SC1091
    source "$APP_DATA_DIR/exports.sh"
  fi
}
stackhub_exports || { echo "stackhub: exports.sh failed (exit $?)"; exit 98; }
if [ "$mode" = hook ] && [ -f /stackhub/app/hooks/pre-start ]; then
  echo "stackhub: running hooks/pre-start"
  # Umbrel logs a failing hook and starts the app anyway (store hooks often end with a
  # `[ -f x ] && ...` that is false on a fresh install): so does StackHub.
  bash "$APP_DATA_DIR/hooks/pre-start" || \
    echo "stackhub: warning: hooks/pre-start exited with $? (the app starts anyway, as on Umbrel)"
  cd "$APP_DATA_DIR" || exit 97
  stackhub_exports || { echo "stackhub: exports.sh failed after the hook (exit $?)"; exit 98; }
fi
if [ "$mode" = post-install ] || [ "$mode" = post-start ]; then
  # After StackHub started the accepted project: what the hook exports is not read back.
  if [ -f "/stackhub/app/hooks/$mode" ]; then
    echo "stackhub: running hooks/$mode"
    bash "$APP_DATA_DIR/hooks/$mode" || \
      echo "stackhub: warning: hooks/$mode exited with $? (the app keeps running, as on Umbrel)"
  fi
  exit 0
fi
env -0 >&3
"""

_DERIVE = r"""#!/bin/bash
# StackHub's derive_entropy: HMAC-SHA256 of the identifier with this instance's key.
if [ -z "${1:-}" ]; then echo "derive_entropy: missing identifier" >&2; exit 1; fi
printf "%s" "$1" | openssl dgst -sha256 -hmac "$(cat /stackhub/data/key)" | sed 's/^.* //'
"""

_HOSTNAME = r"""#!/bin/bash
# StackHub's hostname: -I/--all-ip-addresses print the box's addresses (given as data).
case "${1:-}" in
  -I|--all-ip-addresses|-i|--ip-address) tr '\n' ' ' </stackhub/data/addresses; echo ;;
  "") echo "${DEVICE_HOSTNAME:-localhost}" ;;
  -s|--short|-f|--fqdn) echo "${DEVICE_HOSTNAME:-localhost}" ;;
  *) echo "hostname $*: not available in StackHub's store-script sandbox" >&2; exit 1 ;;
esac
"""

_APP = r"""#!/bin/bash
# StackHub's emulation of Umbrel's scripts/app: only what store scripts need.
case "${1:-}" in
  ls-installed) cat /stackhub/data/installed ;;
  compose)
    shift
    if [[ " $* " == *" up "* && " $* " == *" tor"* ]]; then
      echo "app compose: StackHub does not run Tor; skipped: $*" >&2; exit 0
    fi
    # Served by StackHub outside the sandbox (its own app only) when the run has the proxy
    # (hook runs, after the exported values were checked); refused otherwise.
    if [ -S /stackhub-proxy/sock ]; then
      exec python3 /stackhub/bin/stackhub-proxy app compose "$@"
    fi
    echo "app compose $*: refused; no compose proxy in this sandbox run (StackHub starts" \
         "the whole project after the scripts)" >&2; exit 1 ;;
  start|stop|restart)
    if [ -S /stackhub-proxy/sock ]; then exec python3 /stackhub/bin/stackhub-proxy app "$@"; fi
    echo "app $*: refused; no compose proxy in this sandbox run" >&2
    exit 1 ;;
  *) echo "app ${1:-}: refused; StackHub's sandbox supports 'app ls-installed'," \
       "'app compose <id> up tor' (a no-op) and, after the app started, 'app compose <id>" \
       "exec|run|up|start|stop|restart' on its own services" >&2; exit 1 ;;
esac
"""

_DOCKER = r"""#!/bin/bash
# StackHub's docker: only 'docker ps -f name=X' over this app's own containers (given as data).
if [ "${1:-}" = exec ] && [ -S /stackhub-proxy/sock ]; then
  exec python3 /stackhub/bin/stackhub-proxy docker "$@"
fi
if [ "${1:-}" != ps ]; then
  echo "docker $*: refused; StackHub's store-script sandbox has no Docker (only" \
       "'docker ps -f name=...' of the app's own containers, and 'docker exec' in them" \
       "after the app started)" >&2; exit 1
fi
shift; filter=""
while [ $# -gt 0 ]; do
  case "$1" in
    -f|--filter) filter="${2:-}"; shift 2 ;;
    --filter=*) filter="${1#--filter=}"; shift ;;
    -q|--quiet|-a|--all|--no-trunc) shift ;;
    --format) shift 2 ;;
    --format=*) shift ;;
    *) echo "docker ps $1: not supported in StackHub's sandbox" >&2; exit 1 ;;
  esac
done
case "$filter" in
  ""|name=*) ;;
  *) echo "docker ps --filter $filter: only name= is supported" >&2; exit 1 ;;
esac
want="${filter#name=}"
while IFS= read -r name; do
  [ -n "$name" ] || continue
  if [ -z "$want" ] || [[ "$name" == *"$want"* ]]; then echo "$name"; fi
done </stackhub/data/containers
"""

_PROXY = r"""#!/usr/bin/python3
# StackHub's compose proxy client: sends the argument list (and stdin for exec/run, at most
# 1 MiB) to StackHub outside the sandbox, which checks it and answers; prints the reply.
import base64, json, os, socket, sys
argv = sys.argv[1:]
data = b""
if any(a in ("exec", "run") for a in argv[:4]) and not os.isatty(0):
    data = sys.stdin.buffer.read(1024 * 1024 + 1)
conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
conn.connect("/stackhub-proxy/sock")
conn.sendall(json.dumps({"argv": argv, "stdin": base64.b64encode(data).decode()}).encode()
             + b"\n")
buf = b""
while True:
    chunk = conn.recv(65536)
    if not chunk:
        break
    buf += chunk
try:
    reply = json.loads(buf)
except ValueError:
    sys.stderr.write("stackhub: the compose proxy did not answer\n")
    sys.exit(125)
sys.stdout.buffer.write(base64.b64decode(reply["stdout"]))
sys.stdout.flush()
sys.stderr.buffer.write(base64.b64decode(reply["stderr"]))
sys.exit(int(reply["code"]))
"""

EMULATIONS = {"derive_entropy": _DERIVE, "hostname": _HOSTNAME, "app": _APP, "docker": _DOCKER,
              PROXY_CLIENT: _PROXY}


class ScriptRunner:
    """Stage an instance's scripts and run them in the sandbox."""

    def __init__(self, engine: SandboxEngine, *, secrets_dir: Path, work_dir: Path,
                 image: str, limits: Limits | None = None) -> None:
        """Keep the engine, where the seed lives and where staging folders go."""
        self.engine = engine
        self.secrets_dir = secrets_dir
        self.work_dir = work_dir
        self.image = image
        self.limits = limits or Limits()

    def stage(self, folder: Path, scripts: dict[str, str], ctx: ScriptContext) -> None:
        """Write the driver, emulations, scripts and data into `folder` (mounted read-only)."""
        bin_dir, app_dir, data = folder / "bin", folder / "app", folder / "data"
        for sub in (bin_dir, app_dir / "hooks", data):
            sub.mkdir(parents=True, exist_ok=True)
        (folder / "driver").write_text(_DRIVER)
        for name, text in EMULATIONS.items():
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(0o700)  # root in the sandbox (DAC_OVERRIDE) reads the rest
        for name, text in scripts.items():
            if name == EXPORTS or name in HOOKS:
                (app_dir / name).write_text(text)
        key = instance_key(load_seed(self.secrets_dir), ctx.instance, ctx.app_id)
        (data / "key").write_text(key)
        (data / "addresses").write_text("".join(a + "\n" for a in ctx.addresses))
        (data / "installed").write_text("".join(a + "\n" for a in ctx.installed))
        (data / "containers").write_text("".join(c + "\n" for c in ctx.containers))

    def spec(self, folder: Path, ctx: ScriptContext, mode: str,
             proxy_folder: Path | None = None) -> RunSpec:
        """Return the sandbox run of `mode` for a staged folder (and the proxy's socket).

        Modes: "exports", "hook" (pre-start), "post-install", "post-start".
        """
        data_dir = str(ctx.data_dir)
        umbrel_root = f"{data_dir}/umbrel"
        env = {**ctx.env, "APP_DATA_DIR": data_dir, "APP_ID": ctx.app_id,
               "UMBREL_ROOT": umbrel_root, "LANG": "C.UTF-8",
               "HOME": "/tmp"}  # noqa: S108 - the sandbox's own tmpfs
        env = {k: v for k, v in env.items() if "\0" not in v and "=" not in k}
        mounts = [Mount(str(folder), STAGE), Mount(data_dir, data_dir, writable=True),
                  Mount(str(folder / "bin"), f"{umbrel_root}/scripts")]
        if proxy_folder is not None:
            mounts.append(Mount(str(proxy_folder), sandbox_proxy.TARGET))
        return RunSpec(command=["/bin/bash", f"{STAGE}/driver", mode], env=env,
                       mounts=mounts,
                       workdir="/", limits=self.limits,
                       labels={"org.stackhub.sandbox.instance": ctx.instance})

    def run(self, scripts: dict[str, str], ctx: ScriptContext, *, mode: str,
            proxy: sandbox_proxy.Handler | None = None) -> ScriptOutcome:
        """Run the scripts once; raise ScriptFailed (with the log) if they fail or hit a limit.

        With a `proxy`, the run's ``app compose``/``docker exec`` requests are answered by it,
        outside the sandbox (apps/hookproxy.py), over a unix socket bound read-only.
        """
        self.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder = Path(tempfile.mkdtemp(prefix="sandbox-", dir=self.work_dir))
        try:
            ctx.data_dir.mkdir(parents=True, exist_ok=True)
            fsutil.make_folders_inside(ctx.data_dir, "umbrel/scripts", owner=None)
            self.stage(folder, scripts, ctx)
            if proxy is None:
                result = self.engine.run_limited(self.image, self.spec(folder, ctx, mode))
            else:
                deadline = time.monotonic() + self.limits.timeout
                with sandbox_proxy.ProxyServer(proxy, deadline=deadline) as server:
                    result = self.engine.run_limited(
                        self.image, self.spec(folder, ctx, mode, server.folder))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return outcome(result, ctx, self.limits)


def outcome(result: RunResult, ctx: ScriptContext, limits: Limits) -> ScriptOutcome:
    """Turn a sandbox result into exports, or a ScriptFailed naming what went wrong."""
    log = result.log.strip()
    tail = "\n".join(log.splitlines()[-20:])
    where = f"; script output:\n{tail}" if tail else ""
    if result.timed_out:
        raise ScriptFailed(f"the app's store scripts were stopped after {limits.timeout:g} s "
                           f"(the sandbox's time limit){where}", details={"log": log})
    if result.oom_killed:
        raise ScriptFailed(f"the app's store scripts used more than "
                           f"{limits.memory // (1024 * 1024)} MiB and were stopped{where}",
                           details={"log": log})
    if result.exit_code != 0:
        raise ScriptFailed(f"the app's store scripts failed (exit code {result.exit_code})"
                           f"{where}", details={"log": log})
    if result.stdout_overflow:
        raise ScriptFailed("the app's store scripts exported more than the sandbox reads "
                           f"(1 MiB){where}", details={"log": log})
    given = {**ctx.env, "APP_DATA_DIR": str(ctx.data_dir), "APP_ID": ctx.app_id,
             "UMBREL_ROOT": f"{ctx.data_dir}/umbrel"}
    exports, skipped = parse_env(result.stdout, given)
    for name in list(exports):
        if name in ctx.protected or name in ("APP_DATA_DIR", "APP_ID", "UMBREL_ROOT"):
            skipped.append(f"{name}: StackHub sets it; a script may not change it")
            del exports[name]
    return ScriptOutcome(exports=exports, log=log, skipped=skipped)


def append_log(path: Path, text: str) -> None:
    """Add a hook run's output to the instance's hooks log (0600), keeping its last 256 KiB."""
    old = path.read_bytes()[-HOOKS_LOG_LIMIT:] if path.is_file() else b""
    new = (old + text.encode() + b"\n")[-HOOKS_LOG_LIMIT:]
    fsutil.write_atomic(path, new, mode=0o600)


def dump_exports(path: Path, exports: dict[str, str]) -> None:
    """Keep what the scripts exported beside the project (0600; shown in the settings)."""
    fsutil.write_atomic(path, json.dumps(exports, indent=2, sort_keys=True), mode=0o600)
