"""In-memory fakes of the engine and compose adapters, for unit tests of the layers above.

`FakeEngine` implements the `Engine` protocol (the `InventoryEngine` one included);
`FakeCompose` implements the `Compose` protocol (it does not subclass the real `ComposeCli`),
reads the project files it is given and mutates its FakeEngine's containers, networks and
volumes the way ``docker compose`` would. Neither talks to a real engine.
"""

from __future__ import annotations

import asyncio
import hashlib
import posixpath
import queue
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stackhub import labels, yamlsafe
from stackhub.adapters.compose import (
    COMPOSE_FILE,
    ENV_FILE,
    Compose,
    ComposeContainer,
    ComposePublisher,
    ResolvedProject,
)
from stackhub.adapters.engine import (
    ContainerDetailRecord,
    ContainerInfo,
    ContainerRecord,
    Engine,
    ImageRecord,
    InventoryEngine,
    MountRecord,
    NetworkAttachment,
    NetworkRecord,
    PruneRecord,
    PullProgress,
    VolumeRecord,
    _container,
)
from stackhub.errors import (
    Conflict,
    EngineUnavailable,
    ImagePullFailed,
    Invalid,
    NotFound,
    StackHubError,
)
from stackhub.platform import substitute

_GATE_TIMEOUT = 10.0
_BUILTIN_NETWORKS = {"bridge": "bridge", "host": "host", "none": "null"}
_EXITED = re.compile(r"^Exited \((-?\d+)\)")


def fake_id(kind: str, name: str) -> str:
    """Return the stable id the fake engine gives an image or network of this name."""
    digest = hashlib.sha256(f"{kind}:{name}".encode()).hexdigest()
    return f"sha256:{digest}" if kind == "image" else digest


class FakeEngine:
    """An engine held in memory: images, containers, networks, volumes and an event queue."""

    def __init__(self) -> None:
        """Start with no images, containers, networks or volumes, and the engine up."""
        self.available = True
        self.hung = False  # probe() times out (a SIGSTOPped dockerd)
        self.images: set[str] = set()
        self.pullable: dict[str, list[float]] = {}
        self.pull_failures: dict[str, StackHubError] = {}
        self.pull_gate: threading.Event | None = None
        self.raw_containers: list[dict[str, Any]] = []
        self.networks: dict[str, dict[str, str]] = {}
        self.network_subnets: dict[str, list[str]] = {"bridge": ["172.17.0.0/16"]}
        self.volumes: dict[str, dict[str, str]] = {}
        self.event_queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def _check(self, verb: str, arg: str = "") -> None:
        with self._lock:
            self.calls.append((verb, arg))
        if not self.available:
            raise EngineUnavailable("the Docker engine is not reachable; is dockerd running?")

    def called(self, verb: str) -> list[str]:
        """Return the arguments of every call of `verb`, in order."""
        return [arg for name, arg in self.calls if name == verb]

    def allow_pull(self, ref: str, *progress: float) -> None:
        """Make `ref` pullable, reporting the given percentages before completing."""
        self.pullable[ref] = list(progress)

    def add_container(self, name: str, *, labels_: dict[str, str] | None = None,
                      image: str = "busybox", state: str = "running",
                      health: str | None = None,
                      ports: Iterable[tuple[int, int, str]] = (),
                      networks: Iterable[str] = (), volumes: Iterable[str] = ()) -> ContainerInfo:
        """Add a container; `ports` are (host port, container port, protocol).

        `networks` and `volumes` name the networks it joins and the named volumes it mounts.
        """
        status = "Up 1 second" if state == "running" else "Exited (0) 1 second ago"
        if health is not None and state == "running":
            status += " (health: starting)" if health == "starting" else f" ({health})"
        raw = {"Id": uuid.uuid4().hex, "Names": [f"/{name}"], "Image": image,
               "ImageID": fake_id("image", image), "Created": int(time.time()), "State": state,
               "Status": status, "Labels": dict(labels_ or {}),
               "Ports": [{"IP": "0.0.0.0", "PublicPort": host, "PrivatePort": target,  # noqa: S104
                          "Type": proto} for host, target, proto in ports],
               "NetworkSettings": {"Networks": {net: {} for net in networks}},
               "Mounts": [{"Type": "volume", "Name": vol, "Source": "", "Destination": "",
                           "RW": True} for vol in volumes]}
        with self._lock:
            self.raw_containers.append(raw)
        return _container(raw)

    def add_instance_container(self, instance: str, service: str = "web", **kwargs: Any) -> \
            ContainerInfo:
        """Add a container labelled as StackHub's compose would label it."""
        project = labels.project_name(instance)
        lbl = {labels.MANAGED: "true", labels.INSTANCE: instance, labels.COMPOSE_PROJECT: project,
               labels.COMPOSE_SERVICE: service}
        return self.add_container(f"{project}-{service}-1", labels_=lbl, **kwargs)

    def set_state(self, project: str, state: str, health: str | None = None) -> None:
        """Set the state (and health) of every container of a compose project."""
        with self._lock:
            for raw in self.raw_containers:
                if raw["Labels"].get(labels.COMPOSE_PROJECT) == project:
                    raw["State"] = state
                    raw["Status"] = "Up 1 second" if state == "running" else "Exited (0)"
                    if health is not None and state == "running":
                        raw["Status"] += f" ({health})"

    def remove_project(self, project: str, *, volumes: bool) -> None:
        """Remove a compose project's containers and networks (and volumes if asked)."""
        with self._lock:
            self.raw_containers = [c for c in self.raw_containers
                                   if c["Labels"].get(labels.COMPOSE_PROJECT) != project]
            for store, wanted in ((self.networks, True), (self.volumes, volumes)):
                for name in [n for n, lbl in store.items()
                             if wanted and lbl.get(labels.COMPOSE_PROJECT) == project]:
                    del store[name]
                    if store is self.networks:
                        self.network_subnets.pop(name, None)

    def add_network(self, name: str, *subnets: str, labels_: dict[str, str] | None = None) -> None:
        """Add a bridge network (anyone's) with the given IPAM subnets."""
        with self._lock:
            self.networks[name] = dict(labels_ or {})
            self.network_subnets[name] = list(subnets)

    # -- the Engine protocol -------------------------------------------------------------

    def ping(self) -> str:
        """Return a fake API version."""
        self._check("ping")
        return "1.45"

    def probe(self, timeout: float) -> None:
        """Answer like ping, unrecorded (the status cache probes often); `hung` never answers."""
        if self.hung:
            time.sleep(timeout)
            raise EngineUnavailable("the Docker engine does not answer; is dockerd hung?")
        if not self.available:
            raise EngineUnavailable("the Docker engine is not reachable; is dockerd running?")

    def image_present(self, ref: str) -> bool:
        """Tell whether `ref` is in the image set."""
        self._check("image_present", ref)
        return ref in self.images

    def pull(self, ref: str, report: Callable[[PullProgress], None]) -> None:
        """Report the scripted progress of `ref`, then add it or raise its scripted failure."""
        self._check("pull", ref)
        steps = self.pullable.get(ref, [])
        for index, percent in enumerate(steps):
            report(PullProgress(image=ref, percent=percent, status="Downloading",
                                layers_done=index, layers_total=len(steps)))
        if self.pull_gate is not None:
            self.pull_gate.wait(_GATE_TIMEOUT)
        if not self.available:
            raise EngineUnavailable("lost the connection to the Docker engine")
        failure = self.pull_failures.get(ref)
        if failure is not None:
            raise failure
        if ref not in self.pullable:
            raise ImagePullFailed(f"could not pull image {ref}: pull access denied for {ref}")
        self.images.add(ref)
        report(PullProgress(image=ref, percent=100.0, status="done",
                            layers_done=len(steps), layers_total=len(steps)))

    def containers(self, *, managed_only: bool = True) -> list[ContainerInfo]:
        """List containers, by default only those labelled as StackHub's."""
        self._check("containers")
        with self._lock:
            raws = list(self.raw_containers)
        found = [_container(raw) for raw in raws]
        return [c for c in found if c.managed] if managed_only else found

    def managed_networks(self) -> list[tuple[str, str | None]]:
        """List StackHub's networks as (name, instance)."""
        self._check("managed_networks")
        return [(n, lbl.get(labels.INSTANCE)) for n, lbl in sorted(self.networks.items())
                if lbl.get(labels.MANAGED) == "true"]

    def managed_volumes(self) -> list[tuple[str, str | None]]:
        """List StackHub's volumes as (name, instance)."""
        self._check("managed_volumes")
        return [(v, lbl.get(labels.INSTANCE)) for v, lbl in sorted(self.volumes.items())
                if lbl.get(labels.MANAGED) == "true"]

    def remove_network(self, name: str) -> None:
        """Remove a network by name or id, or raise NotFound."""
        self._check("remove_network", name)
        name = next((n for n in self.networks if fake_id("network", n) == name), name)
        if self.networks.pop(name, None) is None:
            raise NotFound(f"network {name} not found")
        self.network_subnets.pop(name, None)

    def remove_volume(self, name: str) -> None:
        """Remove a volume or raise NotFound."""
        self._check("remove_volume", name)
        if self.volumes.pop(name, None) is None:
            raise NotFound(f"volume {name} not found")

    def remove_container(self, ref: str, *, force: bool = False) -> None:
        """Remove a container by id or name (a running one only with `force`), or NotFound."""
        self._check("remove_container", ref)
        with self._lock:
            raw = self._find(ref)
            if raw["State"] == "running" and not force:
                raise Conflict(f"cannot remove container {ref}: container is running: stop "
                               "the container before removing or force remove")
            self.raw_containers = [c for c in self.raw_containers if c is not raw]

    def events(self, stop: threading.Event) -> Iterator[dict[str, Any]]:
        """Yield events put on `event_queue` until `stop` is set."""
        self._check("events")
        while not stop.is_set():
            if not self.available:
                raise EngineUnavailable("lost the engine's event stream")
            try:
                yield self.event_queue.get(timeout=0.02)
            except queue.Empty:
                continue

    # -- the InventoryEngine protocol (the admin's containers view) ----------------------

    def _find(self, ref: str) -> dict[str, Any]:
        """Return the raw container whose id, 12+ character id prefix or name is `ref`."""
        for raw in self.raw_containers:
            if ref == raw["Id"] or (len(ref) >= 12 and raw["Id"].startswith(ref)) or \
                    ref in [n.lstrip("/") for n in raw["Names"]]:
                return raw
        raise NotFound(f"container {ref} not found")

    def all_containers(self) -> list[ContainerRecord]:
        """List every container, StackHub's or not."""
        self._check("all_containers")
        with self._lock:
            raws = list(self.raw_containers)
        return [ContainerRecord.from_api(raw) for raw in raws]

    def inspect_container(self, ref: str) -> ContainerDetailRecord:
        """Describe one container (what the list knows of it), or raise NotFound."""
        self._check("inspect_container", ref)
        with self._lock:
            listed = ContainerRecord.from_api(self._find(ref))
        exited = _EXITED.match(listed.status)
        return ContainerDetailRecord(
            id=listed.id, name=listed.name, image=listed.image, image_id=listed.image_id,
            state=listed.state, health=listed.health, labels=listed.labels, ports=listed.ports,
            networks=[NetworkAttachment(name=n) for n in listed.networks],
            mounts=[MountRecord(type=m.type, name=m.name, destination=m.destination)
                    for m in listed.mounts],
            exit_code=int(exited.group(1)) if exited else 0)

    def container_action(self, ref: str, action: str, *, timeout: int | None = None) -> None:
        """Start, stop or restart one container."""
        self._check("container_action", f"{ref} {action}")
        if action not in ("start", "stop", "restart"):
            raise ValueError(f"unknown container action {action!r}")
        with self._lock:
            raw = self._find(ref)
            running = action != "stop"
            raw["State"] = "running" if running else "exited"
            raw["Status"] = "Up 1 second" if running else "Exited (0) 1 second ago"

    def all_images(self) -> list[ImageRecord]:
        """List the image set (every image tagged with its reference)."""
        self._check("all_images")
        return [ImageRecord(id=fake_id("image", ref), tags=[ref]) for ref in sorted(self.images)]

    def _image_users(self, ref: str) -> list[str]:
        with self._lock:
            return [raw["Names"][0].lstrip("/") for raw in self.raw_containers
                    if raw.get("Image") == ref]

    def remove_image(self, ref: str, *, force: bool = False) -> None:
        """Remove an image by reference or id; Conflict while a container uses it."""
        self._check("remove_image", ref)
        found = next((r for r in self.images if ref in (r, fake_id("image", r))), None)
        if found is None:
            raise NotFound(f"No such image: {ref}")
        users = self._image_users(found)
        if users and not force:
            raise Conflict(f"unable to remove image {ref}: container {users[0]} is using it")
        self.images.discard(found)

    def prune_images(self, *, dangling_only: bool = True) -> PruneRecord:
        """Remove images no container uses (none is dangling here: every one is tagged)."""
        self._check("prune_images")
        deleted: list[str] = []
        if not dangling_only:
            for ref in sorted(self.images):
                if not self._image_users(ref):
                    self.images.discard(ref)
                    deleted += [ref, fake_id("image", ref)]
        return PruneRecord(deleted=deleted)

    def all_volumes(self) -> list[VolumeRecord]:
        """List every volume."""
        self._check("all_volumes")
        return [VolumeRecord(name=name, mountpoint=f"/var/lib/docker/volumes/{name}/_data",
                             labels=dict(lbl)) for name, lbl in sorted(self.volumes.items())]

    def all_networks(self) -> list[NetworkRecord]:
        """List the engine's own networks, then every other one."""
        self._check("all_networks")
        own = [NetworkRecord(id=fake_id("network", name), name=name, driver=driver,
                             subnets=self.network_subnets.get(name, []))
               for name, driver in _BUILTIN_NETWORKS.items()]
        return own + [NetworkRecord(id=fake_id("network", name), name=name, driver="bridge",
                                    labels=dict(lbl), subnets=self.network_subnets.get(name, []))
                      for name, lbl in sorted(self.networks.items())]


# -- compose file handling ---------------------------------------------------------------

_DQ_ESCAPES = {"\\": "\\", '"': '"', "$": "$", "n": "\n", "r": "\r", "t": "\t"}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Interpolate like ``docker compose`` (`stackhub.platform.substitute`, its compose rules)."""
    try:
        return substitute(text, env)
    except Invalid as err:
        raise Invalid(f"the compose file is invalid: {err.message}") from err


def parse_env_file(text: str) -> dict[str, str]:
    """Parse a .env file as Compose does: 'literal', "escaped", or bare values."""
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        stripped = stripped.removeprefix("export ")
        key, sep, raw = stripped.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", key.strip()):
            raise Invalid(f"the env file is invalid at line {number}")
        env[key.strip()] = _env_value(raw.strip(), env, number)
    return env


def _env_value(raw: str, env: dict[str, str], number: int) -> str:
    if raw.startswith("'"):
        end = raw.find("'", 1)
        if end < 0:
            raise Invalid(f"the env file has an unterminated quote at line {number}")
        return raw[1:end]
    if raw.startswith('"'):
        out: list[str] = []
        index = 1
        while index < len(raw):
            char = raw[index]
            if char == "\\" and index + 1 < len(raw):
                nxt = raw[index + 1]
                out.append("\x00DOLLAR\x00" if nxt == "$" else _DQ_ESCAPES.get(nxt, "\\" + nxt))
                index += 2
                continue
            if char == '"':
                expanded = interpolate("".join(out).replace("$$", "\x00DD\x00"), env)
                return expanded.replace("\x00DD\x00", "$$").replace("\x00DOLLAR\x00", "$")
            out.append(char)
            index += 1
        raise Invalid(f"the env file has an unterminated quote at line {number}")
    bare = re.split(r"\s+#", raw, maxsplit=1)[0].strip()
    return interpolate(bare, env)


def _interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(item, env) for item in node]
    return node


def _escape_dollars(node: Any) -> Any:
    """Write ``$`` as ``$$`` in strings, as ``compose config`` output does."""
    if isinstance(node, str):
        return node.replace("$", "$$")
    if isinstance(node, dict):
        return {key: _escape_dollars(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_escape_dollars(item) for item in node]
    return node


def _port_entries(item: Any, service: str) -> list[dict[str, Any]]:
    if isinstance(item, dict):
        entry: dict[str, Any] = {"mode": item.get("mode", "ingress")}
        if item.get("host_ip"):
            entry["host_ip"] = str(item["host_ip"])
        entry["target"] = int(item["target"])
        if item.get("published") not in (None, ""):
            entry["published"] = str(item["published"])
        entry["protocol"] = str(item.get("protocol") or "tcp")
        return [entry]
    text, _, protocol = str(item).partition("/")
    parts = text.rsplit(":", 2)
    host_ip = parts[0] if len(parts) == 3 else ""
    published = parts[-2] if len(parts) >= 2 else ""
    target = parts[-1]
    targets = _span(target, service)
    pubs = _span(published, service) if published else []
    if pubs and len(pubs) == len(targets):
        pairs: list[tuple[str | None, int]] = [(str(p), t) for p, t in zip(pubs, targets,
                                                                          strict=True)]
    else:
        pairs = [(published or None, t) for t in targets]
    entries: list[dict[str, Any]] = []
    for pub, tgt in pairs:
        entry = {"mode": "ingress", **({"host_ip": host_ip} if host_ip else {}), "target": tgt}
        if pub:
            entry["published"] = pub
        entry["protocol"] = protocol or "tcp"
        entries.append(entry)
    return entries


def _span(text: str, service: str) -> list[int]:
    low, _, high = text.partition("-")
    if not low.isdigit() or (high and not high.isdigit()):
        raise Invalid(f"the compose file is invalid: service {service}: invalid port {text!r}")
    return list(range(int(low), int(high or low) + 1))


def _host_path(source: str, project_dir: Path) -> str:
    if source.startswith("~"):
        source = str(Path(source).expanduser())
    if not source.startswith("/"):
        return posixpath.normpath(posixpath.join(str(project_dir), source))
    return source


def _volume_entry(item: Any, service: str, project_dir: Path, named: dict[str, Any]) -> \
        dict[str, Any]:
    entry: dict[str, Any]
    if isinstance(item, dict):
        entry = dict(item)
        if entry.get("type") == "bind" and isinstance(entry.get("source"), str):
            entry["source"] = _host_path(entry["source"], project_dir)
    else:
        parts = str(item).split(":")
        if len(parts) == 1:
            return {"type": "volume", "target": parts[0], "volume": {}}
        source, target, mode = parts[0], parts[1], ":".join(parts[2:])
        if source.startswith(("/", ".", "~")):
            entry = {"type": "bind", "source": _host_path(source, project_dir), "target": target,
                     "bind": {"create_host_path": True}}
        else:
            entry = {"type": "volume", "source": source, "target": target, "volume": {}}
        if "ro" in mode.split(","):
            entry["read_only"] = True
    if entry.get("type") == "volume" and entry.get("source") and entry["source"] not in named:
        raise Invalid(f"the compose file is invalid: service {service!r} refers to undefined "
                      f"volume {entry['source']}")
    return entry


def _as_mapping(value: Any, sep: str = "=") -> dict[str, Any]:
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    result: dict[str, Any] = {}
    for item in value or []:
        key, found, rest = str(item).partition(sep)
        result[key] = rest if found else None
    return result


def _device(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        return dict(item)
    parts = str(item).split(":")
    return {"source": parts[0], "target": parts[1] if len(parts) > 1 else parts[0],
            "permissions": parts[2] if len(parts) > 2 else "rwm"}


def resolve_project(project: str, project_dir: Path, *, escape: bool = True) -> dict[str, Any]:
    """Return a ``compose config --format json``-like model of a written project.

    Like Compose, the output writes ``$`` as ``$$`` unless `escape` is false.
    """
    env_path = project_dir / ENV_FILE
    env = parse_env_file(env_path.read_text()) if env_path.is_file() else {}
    raw = yamlsafe.load_mapping((project_dir / COMPOSE_FILE).read_bytes(), what="compose file")
    data = _interpolate_tree(raw, env)
    services = data.get("services")
    if not isinstance(services, dict) or not services:
        raise Invalid("the compose file is invalid: no services")
    named = data.get("volumes") or {}
    out: dict[str, Any] = {"name": project, "services": {}}
    uses_default = False
    for name, spec in services.items():
        if not isinstance(spec, dict):
            raise Invalid(f"the compose file is invalid: service {name} must be a mapping")
        if not spec.get("image") and "build" not in spec:
            raise Invalid(f"the compose file is invalid: service {name} has neither an image "
                          "nor a build context specified")
        svc: dict[str, Any] = {"command": None, "entrypoint": None, **spec}
        if "ports" in spec:
            svc["ports"] = [e for p in spec["ports"] or [] for e in _port_entries(p, name)]
        if "volumes" in spec:
            svc["volumes"] = [_volume_entry(v, name, project_dir, named)
                              for v in spec["volumes"] or []]
        for key in ("environment", "labels"):
            if key in spec:
                svc[key] = _as_mapping(spec[key])
        if "devices" in spec:
            svc["devices"] = [_device(d) for d in spec["devices"] or []]
        if "network_mode" not in spec and "networks" not in spec:
            svc["networks"] = {"default": None}
            uses_default = True
        out["services"][name] = svc
    for section in ("networks", "volumes", "secrets", "configs"):
        block = dict(data.get(section) or {})
        if section == "networks" and uses_default:
            block.setdefault("default", {})
        resolved: dict[str, Any] = {}
        for key, spec in block.items():
            spec = dict(spec or {})
            if not spec.get("external"):
                spec.setdefault("name", f"{project}_{key}")
            if "labels" in spec:
                spec["labels"] = _as_mapping(spec["labels"])
            if isinstance(spec.get("file"), str):
                spec["file"] = _host_path(spec["file"], project_dir)
            resolved[key] = spec
        if resolved:
            out[section] = resolved
    if not escape:
        return out
    escaped: dict[str, Any] = _escape_dollars(out)
    return escaped


@dataclass
class FakeCall:
    """One call made to FakeCompose."""

    verb: str
    project: str
    project_dir: Path | None
    options: dict[str, Any] = field(default_factory=dict)


class FakeCompose:
    """The `Compose` protocol's verbs, acting on a FakeEngine instead of running compose."""

    def __init__(self, engine: FakeEngine | None = None) -> None:
        """Act on `engine` (a new FakeEngine if none)."""
        self.engine = engine if engine is not None else FakeEngine()
        self.calls: list[FakeCall] = []
        self.failures: dict[str, list[StackHubError]] = {}
        self.gates: dict[str, threading.Event] = {}
        self.health: dict[str, str] = {}
        self.states: dict[str, str] = {}
        self.log_lines: dict[str, list[str]] = {}

    def verbs(self) -> list[str]:
        """Return the verbs called so far, in order."""
        return [call.verb for call in self.calls]

    def fail(self, verb: str, error: StackHubError, *, times: int = 1) -> None:
        """Make the next `times` calls of `verb` raise `error`."""
        self.failures.setdefault(verb, []).extend([error] * times)

    def hold(self, verb: str) -> threading.Event:
        """Make calls of `verb` wait until the returned event is set."""
        gate = threading.Event()
        self.gates[verb] = gate
        return gate

    async def _enter(self, verb: str, project: str, project_dir: Path | None,
                     **options: Any) -> None:
        self.calls.append(FakeCall(verb, project, project_dir, options))
        gate = self.gates.get(verb)
        if gate is not None:
            deadline = asyncio.get_running_loop().time() + _GATE_TIMEOUT
            while not gate.is_set() and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.005)
        pending = self.failures.get(verb)
        if pending:
            raise pending.pop(0)
        if verb not in ("config", "version") and not self.engine.available:
            raise EngineUnavailable(f"{verb}: the Docker engine is not reachable; is dockerd "
                                    "running?")

    async def version(self) -> str:
        """Return a fake Compose version."""
        await self._enter("version", "", None)
        return "2.99.0-fake"

    async def config(self, project: str, project_dir: Path) -> ResolvedProject:
        """Resolve the written project files into a compose-config-like model."""
        await self._enter("config", project, project_dir)
        return ResolvedProject.parse(resolve_project(project, project_dir))

    async def up(self, project: str, project_dir: Path, *, timeout: int = 600) -> None:
        """Pull missing images, then (re)create the project's containers, networks, volumes."""
        await self._enter("up", project, project_dir, timeout=timeout)
        model = resolve_project(project, project_dir, escape=False)
        engine = self.engine
        for spec in model["services"].values():
            image = str(spec["image"])
            if image not in engine.images:
                engine.pull(image, lambda _progress: None)
        engine.remove_project(project, volumes=False)
        for section, store in (("networks", engine.networks), ("volumes", engine.volumes)):
            for spec in (model.get(section) or {}).values():
                if not spec.get("external"):
                    store[str(spec["name"])] = {**(spec.get("labels") or {}),
                                                labels.COMPOSE_PROJECT: project}
                    if section == "networks":
                        engine.network_subnets[str(spec["name"])] = [
                            str(c["subnet"]) for c in (spec.get("ipam") or {}).get("config")
                            or [] if c.get("subnet")]
        for service, spec in model["services"].items():
            lbl = {str(k): str(v) for k, v in (spec.get("labels") or {}).items()}
            lbl.update({labels.COMPOSE_PROJECT: project, labels.COMPOSE_SERVICE: service})
            ports = [(int(p["published"]), int(p["target"]), str(p["protocol"]))
                     for p in spec.get("ports") or [] if str(p.get("published", "")).isdigit()]
            top_networks, top_volumes = model.get("networks") or {}, model.get("volumes") or {}
            networks = [str(top_networks[n]["name"]) for n in spec.get("networks") or []
                        if n in top_networks]
            mounted = [str(top_volumes[v["source"]]["name"]) for v in spec.get("volumes") or []
                       if v.get("type") == "volume" and v.get("source") in top_volumes]
            engine.add_container(f"{project}-{service}-1", labels_=lbl,
                                 image=str(spec["image"]), state=self.states.get(service,
                                                                                 "running"),
                                 health=self.health.get(service), ports=ports,
                                 networks=networks, volumes=mounted)

    async def down(self, project: str, project_dir: Path | None, *, volumes: bool) -> None:
        """Remove the project's containers and networks (and volumes if asked)."""
        await self._enter("down", project, project_dir, volumes=volumes)
        self.engine.remove_project(project, volumes=volumes)

    async def lifecycle(self, verb: str, project: str, project_dir: Path) -> None:
        """Start, stop or restart the project's containers."""
        if verb not in ("start", "stop", "restart"):
            raise Invalid(f"unknown lifecycle verb {verb}")
        await self._enter(verb, project, project_dir)
        self.engine.set_state(project, "exited" if verb == "stop" else "running")

    async def ps(self, project: str, project_dir: Path) -> list[ComposeContainer]:
        """List the project's containers as ``compose ps`` would."""
        await self._enter("ps", project, project_dir)
        rows = []
        for c in self.engine.containers(managed_only=False):
            if c.project != project:
                continue
            exited = _EXITED.match(c.status)
            rows.append(ComposeContainer(
                id=c.id[:12], name=c.name, service=c.service or "", project=project,
                image=c.image, state=c.state, status=c.status, health=c.health,
                exit_code=int(exited.group(1)) if exited else 0,
                publishers=[ComposePublisher(url=p.host_ip, target_port=p.container_port,
                                             published_port=p.host_port, protocol=p.protocol)
                            for p in c.ports]))
        return rows

    async def logs(self, project: str, project_dir: Path, *, tail: int | None,
                   follow: bool) -> AsyncIterator[str]:
        """Yield the scripted log lines of the project (the last `tail` of them)."""
        await self._enter("logs", project, project_dir, tail=tail, follow=follow)
        lines = self.log_lines.get(project, [f"{project}-web-1  | hello\n"])
        for line in lines[-tail:] if tail else ([] if tail == 0 else lines):
            yield line


if TYPE_CHECKING:  # `mypy src` proves the fakes implement the adapters' protocols
    _COMPOSE: Compose = FakeCompose()
    _ENGINE: Engine = FakeEngine()
    _INVENTORY: InventoryEngine = FakeEngine()
