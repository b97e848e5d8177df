"""A throwaway container for store scripts (Umbrel ``exports.sh`` and hooks); never the host.

The image is StackHub's own: a Debian ``minbase`` tree made by ``debootstrap`` with the tools
store scripts use (bash, jq, python3 with cryptography, openssl, coreutils, sed, gawk), imported
with ``docker import`` as ``stackhub/sandbox:<hash>`` and labelled with the hash of its recipe,
so it is built once per recipe (on first need, or ahead by ``scripts/test-images``) and never
pulled from a registry.

Every run is a fresh container with: no network (``network_mode: none``), no Docker socket
(nothing of the host is mounted but what the caller gives), a read-only root filesystem and a
small ``/tmp`` tmpfs, all capabilities dropped but CHOWN, DAC_OVERRIDE and FOWNER (what
``chown`` and file preparation need), ``no-new-privileges``, a pids limit (root ignores
RLIMIT_NPROC; the pids cgroup does not), memory and CPU limits, no log driver (output is read
live from the attach stream, capped), and a wall-clock timeout after which it is killed. The
container is always removed. See docs/security.md ("Store scripts").

Run ``python -m stackhub.adapters.sandbox_build`` to build the image if it is missing (as root).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from stackhub.errors import ScriptFailed

RECIPE: dict[str, Any] = {
    "version": 1,
    "suite": "bookworm",
    "mirror": "http://deb.debian.org/debian",
    "variant": "minbase",
    # python3-cffi-backend: debootstrap does not resolve the virtual packages cryptography needs
    "packages": ["bash", "coreutils", "sed", "gawk", "grep", "findutils", "jq", "openssl",
                 "python3", "python3-cryptography", "python3-cffi-backend"],
}
REPOSITORY = "stackhub/sandbox"
LABEL = "org.stackhub.sandbox.recipe"
SANDBOX_LABEL = "org.stackhub.sandbox"
PATH = "/stackhub/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER"]
OUTPUT_LIMIT = 1024 * 1024
"""Bytes of stdout (the data channel) kept; more fails the run."""
LOG_LIMIT = 64 * 1024
"""Bytes of stderr (the script's log) kept; the rest is dropped with a note."""


def recipe_hash() -> str:
    """Return the hash of the image recipe (the label a built image carries)."""
    return hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()


def image_ref() -> str:
    """Return the local image name of the current recipe."""
    return f"{REPOSITORY}:{recipe_hash()[:16]}"


@dataclass(frozen=True)
class Limits:
    """What one run may use."""

    timeout: float = 60.0
    memory: int = 256 * 1024 * 1024
    cpus: float = 1.0
    pids: int = 128
    tmp_size: int = 32 * 1024 * 1024


@dataclass(frozen=True)
class Mount:
    """A host folder bound into the sandbox."""

    source: str
    target: str
    writable: bool = False


@dataclass
class RunSpec:
    """One run: the command (an argument list), environment and mounts."""

    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)
    workdir: str = "/"
    limits: Limits = field(default_factory=Limits)
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class RunResult:
    """What a run produced."""

    exit_code: int | None
    stdout: bytes
    log: str
    timed_out: bool = False
    stdout_overflow: bool = False
    oom_killed: bool = False


class SandboxEngine(Protocol):
    """The engine calls the sandbox needs (adapters/engine.DockerEngine has them)."""

    def image_label(self, ref: str, key: str) -> str | None: ...
    def import_rootfs(self, tar_path: Path, ref: str, changes: list[str]) -> None: ...
    def run_limited(self, image: str, spec: RunSpec) -> RunResult: ...


def limits_from_env(env: Mapping[str, str] | None = None) -> Limits:
    """Return the run limits, the time limit from ``STACKHUB_SANDBOX_TIMEOUT`` (seconds)."""
    raw = (os.environ if env is None else env).get("STACKHUB_SANDBOX_TIMEOUT", "")
    try:
        timeout = float(raw) if raw else Limits.timeout
    except ValueError:
        timeout = Limits.timeout
    return Limits(timeout=min(max(timeout, 1.0), 3600.0))


def ensure_image(engine: SandboxEngine, report: Callable[[str], None] = lambda _: None) -> str:
    """Return the sandbox image, building it first when missing (a few minutes, once)."""
    ref = image_ref()
    if engine.image_label(ref, LABEL) == recipe_hash():
        return ref
    with _BUILD_LOCK:
        if engine.image_label(ref, LABEL) == recipe_hash():
            return ref
        build_image(engine, ref, report)
    return ref


_BUILD_LOCK = threading.Lock()


def build_image(engine: SandboxEngine, ref: str, report: Callable[[str], None]) -> None:
    """Make the image with debootstrap (Debian packages only) and import it."""
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise ScriptFailed("the store-script sandbox image cannot be built: debootstrap is "
                            "missing (apt-get install debootstrap, or run install.sh again)")
    with tempfile.TemporaryDirectory(prefix="stackhub-sandbox-") as tmp:
        root = Path(tmp) / "root"
        report("building the store-script sandbox image (debootstrap, once)")
        command = [debootstrap, f"--variant={RECIPE['variant']}",
                   "--include=" + ",".join(RECIPE["packages"]), str(RECIPE["suite"]),
                   str(root), str(RECIPE["mirror"])]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=1800,
                                  check=False)
        except subprocess.TimeoutExpired as err:
            raise ScriptFailed("building the sandbox image took over 30 minutes") from err
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
            raise ScriptFailed("building the store-script sandbox image failed (debootstrap): "
                                + " | ".join(tail))
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc",
                     "usr/share/man", "usr/share/locale"):
            shutil.rmtree(root / junk, ignore_errors=True)
        (root / "stackhub").mkdir(exist_ok=True)
        archive = Path(tmp) / "root.tar"
        tar = subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(archive),
                              "."], capture_output=True, text=True, check=False)
        if tar.returncode != 0:
            raise ScriptFailed(f"packing the sandbox image failed: {tar.stderr.strip()[:300]}")
        report("importing the sandbox image")
        engine.import_rootfs(archive, ref, [f"LABEL {LABEL}={recipe_hash()}",
                                            f"ENV PATH={PATH}", "WORKDIR /",
                                            'CMD ["/bin/bash"]'])


def host_config_args(spec: RunSpec) -> dict[str, Any]:
    """Return the engine host settings of a run (kept here so tests can read them)."""
    limits = spec.limits
    return {
        "network_mode": "none",
        "read_only": True,
        "cap_drop": ["ALL"],
        "cap_add": list(CAPABILITIES),
        "security_opt": ["no-new-privileges"],
        "pids_limit": limits.pids,
        "mem_limit": limits.memory,
        "memswap_limit": limits.memory,
        "nano_cpus": int(limits.cpus * 1e9),
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={limits.tmp_size}",  # noqa: S108 - its own
                  "/run": "rw,nosuid,nodev,size=1m"},
        "binds": {m.source: {"bind": m.target, "mode": "rw" if m.writable else "ro"}
                  for m in spec.mounts},
        "log_config": {"type": "none", "config": {}},
        "auto_remove": False,
        "init": True,
        "ipc_mode": "private",
    }


class Reader:
    """Read a container's attach stream in a thread, keeping at most the limits."""

    def __init__(self, frames: Any) -> None:
        """Start reading `frames` (docker-py demuxed (stdout, stderr) pairs)."""
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.overflow = False
        self.dropped = 0
        self._frames = frames
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends with the container
            for out, err in self._frames:
                if out:
                    room = OUTPUT_LIMIT - len(self.stdout)
                    if len(out) > room:
                        self.overflow = True
                    self.stdout += out[:max(0, room)]
                if err:
                    room = LOG_LIMIT - len(self.stderr)
                    self.stderr += err[:max(0, room)]
                    self.dropped += max(0, len(err) - max(0, room))

    def join(self, timeout: float) -> None:
        """Wait for the stream to end (the container is gone or stopped)."""
        self._thread.join(timeout)

    def log(self) -> str:
        """Return stderr as text (invalid UTF-8 replaced), with a note when cut."""
        text = bytes(self.stderr).decode("utf-8", "replace")
        if self.dropped:
            text += f"\n[... {self.dropped} more bytes of output dropped]"
        return text


def wait_deadline(start: float, limits: Limits) -> float:
    """Return the seconds left before the wall-clock limit."""
    return max(0.1, limits.timeout - (time.monotonic() - start))
