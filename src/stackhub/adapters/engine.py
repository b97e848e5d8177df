"""Talk to the Docker Engine API (docker-py) with API version negotiation."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from stackhub import labels
from stackhub.adapters import docker_socket, sandbox
from stackhub.adapters.lazy import LazyModule
from stackhub.errors import Conflict, EngineError, EngineUnavailable, ImagePullFailed, NotFound

if TYPE_CHECKING:
    import docker
    import docker.errors
    import docker.utils
    import requests.exceptions
else:  # imported on first use: an idle server on a unix socket never needs them (lazy.py)
    docker = LazyModule("docker")
    requests = LazyModule("requests")


class PublishedPort(BaseModel):
    """A container port published on the host."""

    host_ip: str = ""
    host_port: int
    container_port: int
    protocol: str = "tcp"


class _Record(BaseModel):
    """A read-only record of what the engine reported."""

    model_config = ConfigDict(frozen=True)


class NetworkAttachment(_Record):
    """A network a container is attached to."""

    name: str
    ip_address: str = ""
    network_id: str = Field("", description="The engine's id of the network.")


class ContainerInfo(BaseModel):
    """What StackHub needs to know about one container."""

    id: str
    name: str
    image: str = ""
    instance: str | None = None
    service: str | None = None
    project: str | None = None
    state: str
    health: str | None = None
    status: str = ""
    managed: bool = False
    ports: list[PublishedPort] = Field(default_factory=list)
    networks: list[NetworkAttachment] = Field(default_factory=list, exclude=True)
    """Its networks with its address on each (the engine's container list has them); kept
    out of dumps (events, answers): only the gateway's dial reads them."""


class PullProgress(BaseModel):
    """Progress of one image pull, layer totals summed into a percentage."""

    image: str
    percent: float
    status: str
    layers_done: int
    layers_total: int


PROBE_API = "1.24"
"""The API version of the engine probe's client: fixed, so making it asks the engine nothing."""
_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")


def _container(raw: dict[str, Any]) -> ContainerInfo:
    lbl = raw.get("Labels") or {}
    status = str(raw.get("Status", ""))
    match = _HEALTH.search(status)
    health = None if match is None else match.group(1).replace("health: ", "")
    ports = [PublishedPort(host_ip=p.get("IP", ""), host_port=p["PublicPort"],
                           container_port=p["PrivatePort"], protocol=p.get("Type", "tcp"))
             for p in raw.get("Ports") or [] if p.get("PublicPort")]
    names = raw.get("Names") or [raw["Id"][:12]]
    return ContainerInfo(id=raw["Id"], name=names[0].lstrip("/"), image=raw.get("Image", ""),
                         instance=lbl.get(labels.INSTANCE), service=lbl.get(labels.COMPOSE_SERVICE),
                         project=lbl.get(labels.COMPOSE_PROJECT), state=raw.get("State", ""),
                         health=health, status=status, managed=lbl.get(labels.MANAGED) == "true",
                         ports=ports, networks=_attachments(raw.get("NetworkSettings")))


def _attachments(settings: Any) -> list[NetworkAttachment]:
    """Read a container's networks (list or inspect answer: ``NetworkSettings.Networks``)."""
    found = (settings or {}).get("Networks") or {} if isinstance(settings, dict) else {}
    return [NetworkAttachment(name=str(name), ip_address=str((info or {}).get("IPAddress") or ""),
                              network_id=str((info or {}).get("NetworkID") or ""))
            for name, info in sorted(found.items())]


# -- typed records of the engine's inventory (the admin's containers view reads them) ---------


def _text_list(value: Any) -> list[str]:
    """Return a command-like value (list, string or null) as a list of strings."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(item) for item in value]


def _str_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}


class PortBinding(_Record):
    """A container port, published on the host (host_port set) or not."""

    container_port: int
    protocol: str = "tcp"
    host_ip: str | None = None
    host_port: int | None = None


class MountRecord(_Record):
    """A volume, bind or tmpfs mount of a container."""

    type: str = ""
    source: str = ""
    destination: str = ""
    name: str | None = None
    read_only: bool = False

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> MountRecord:
        """Read one mount of a container list entry or inspection."""
        return cls(type=str(raw.get("Type", "")), source=str(raw.get("Source", "")),
                   destination=str(raw.get("Destination", "")), name=raw.get("Name") or None,
                   read_only=not raw.get("RW", True))


class ContainerRecord(_Record):
    """One container of the engine's list (all states, any owner)."""

    id: str
    name: str
    image: str = ""
    image_id: str = ""
    state: str = ""
    status: str = ""
    health: str | None = None
    created: int = 0
    labels: dict[str, str] = Field(default_factory=dict)
    ports: list[PortBinding] = Field(default_factory=list)
    networks: list[str] = Field(default_factory=list)
    mounts: list[MountRecord] = Field(default_factory=list)

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> ContainerRecord:
        """Read one entry of the engine's container list (``GET /containers/json``)."""
        status = str(raw.get("Status", ""))
        match = _HEALTH.search(status)
        names = raw.get("Names") or ["/" + str(raw["Id"])[:12]]
        return cls(
            id=str(raw["Id"]), name=str(names[0]).lstrip("/"), image=str(raw.get("Image", "")),
            image_id=str(raw.get("ImageID", "")), state=str(raw.get("State", "")),
            status=status,
            health=None if match is None else match.group(1).replace("health: ", ""),
            created=int(raw.get("Created") or 0), labels=_str_map(raw.get("Labels")),
            ports=[PortBinding(container_port=int(p.get("PrivatePort", 0)),
                               protocol=str(p.get("Type") or "tcp"), host_ip=p.get("IP"),
                               host_port=p.get("PublicPort"))
                   for p in raw.get("Ports") or []],
            networks=sorted(((raw.get("NetworkSettings") or {}).get("Networks") or {}).keys()),
            mounts=[MountRecord.from_api(m) for m in raw.get("Mounts") or []])


class ContainerDetailRecord(_Record):
    """The engine's inspection of one container."""

    id: str
    name: str
    image: str = Field("", description="The image reference the container was created from.")
    image_id: str = ""
    state: str = ""
    health: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    ports: list[PortBinding] = Field(default_factory=list)
    networks: list[NetworkAttachment] = Field(default_factory=list)
    mounts: list[MountRecord] = Field(default_factory=list)
    command: list[str] = Field(default_factory=list)
    entrypoint: list[str] = Field(default_factory=list)
    env: list[str] = Field(default_factory=list, description="NAME=value items.")
    restart_policy: str = "no"
    restart_count: int = 0
    stop_timeout: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    pid: int | None = Field(None, description="The host pid of its init process (running).")

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> ContainerDetailRecord:
        """Read the engine's inspection of a container (``GET /containers/{id}/json``)."""
        config = raw.get("Config") or {}
        state = raw.get("State") or {}
        net = raw.get("NetworkSettings") or {}
        ports: list[PortBinding] = []
        for key, bindings in sorted((net.get("Ports") or {}).items()):
            port, _, proto = str(key).partition("/")
            for binding in bindings or [None]:
                ports.append(PortBinding(
                    container_port=int(port), protocol=proto or "tcp",
                    host_ip=(binding or {}).get("HostIp") or None,
                    host_port=int((binding or {}).get("HostPort") or 0) or None))
        stop_timeout = config.get("StopTimeout")
        return cls(
            id=str(raw["Id"]), name=str(raw.get("Name", "")).lstrip("/"),
            image=str(config.get("Image", "")), image_id=str(raw.get("Image", "")),
            state=str(state.get("Status", "")),
            health=(state.get("Health") or {}).get("Status"),
            labels=_str_map(config.get("Labels")), ports=ports,
            networks=_attachments(net),
            mounts=[MountRecord.from_api(m) for m in raw.get("Mounts") or []],
            command=_text_list(config.get("Cmd")),
            entrypoint=_text_list(config.get("Entrypoint")),
            env=_text_list(config.get("Env")),
            restart_policy=str(((raw.get("HostConfig") or {}).get("RestartPolicy") or {})
                               .get("Name") or "no"),
            restart_count=int(raw.get("RestartCount") or 0),
            stop_timeout=None if stop_timeout is None else int(stop_timeout),
            started_at=state.get("StartedAt"), finished_at=state.get("FinishedAt"),
            exit_code=state.get("ExitCode"), pid=int(state.get("Pid") or 0) or None)


class ImageRecord(_Record):
    """One image of the engine's store."""

    id: str
    tags: list[str] = Field(default_factory=list, description="Empty for a dangling image.")
    size: int = 0
    created: int = 0

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> ImageRecord:
        """Read one entry of the engine's image list (``GET /images/json``)."""
        return cls(id=str(raw["Id"]),
                   tags=[str(t) for t in raw.get("RepoTags") or [] if t != "<none>:<none>"],
                   size=int(raw.get("Size") or 0), created=int(raw.get("Created") or 0))


class PruneRecord(_Record):
    """What an image prune removed."""

    deleted: list[str] = Field(default_factory=list, description="Untagged references and "
                               "deleted image ids, in the engine's order.")
    space_reclaimed: int = 0

    @classmethod
    def from_api(cls, raw: Mapping[str, Any] | None) -> PruneRecord:
        """Read the engine's answer to ``POST /images/prune``."""
        raw = raw or {}
        return cls(deleted=[str(next(iter(item.values())))
                            for item in raw.get("ImagesDeleted") or [] if item],
                   space_reclaimed=int(raw.get("SpaceReclaimed") or 0))


class VolumeRecord(_Record):
    """One volume of the engine."""

    name: str
    driver: str = "local"
    mountpoint: str = ""
    created: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> VolumeRecord:
        """Read one entry of the engine's volume list."""
        return cls(name=str(raw["Name"]), driver=str(raw.get("Driver") or "local"),
                   mountpoint=str(raw.get("Mountpoint") or ""), created=raw.get("CreatedAt"),
                   labels=_str_map(raw.get("Labels")))


class NetworkRecord(_Record):
    """One network of the engine."""

    id: str
    name: str
    driver: str = ""
    scope: str = "local"
    internal: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    subnets: list[str] = Field(default_factory=list, description="Its IPAM subnets (CIDR).")

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> NetworkRecord:
        """Read one entry of the engine's network list."""
        ipam = (raw.get("IPAM") or {}).get("Config") or []
        return cls(id=str(raw["Id"]), name=str(raw["Name"]), driver=str(raw.get("Driver", "")),
                   scope=str(raw.get("Scope") or "local"), internal=bool(raw.get("Internal")),
                   labels=_str_map(raw.get("Labels")),
                   subnets=[str(c["Subnet"]) for c in ipam if c.get("Subnet")])


@runtime_checkable
class InventoryEngine(Protocol):
    """Everything on the engine, whoever made it: the admin's containers view (system domain)."""

    def all_containers(self) -> list[ContainerRecord]: ...
    def inspect_container(self, ref: str) -> ContainerDetailRecord: ...
    def container_action(self, ref: str, action: str, *, timeout: int | None = None) -> None: ...
    def remove_container(self, ref: str, *, force: bool = False) -> None: ...
    def all_images(self) -> list[ImageRecord]: ...
    def remove_image(self, ref: str, *, force: bool = False) -> None: ...
    def prune_images(self, *, dangling_only: bool = True) -> PruneRecord: ...
    def all_volumes(self) -> list[VolumeRecord]: ...
    def remove_volume(self, name: str) -> None: ...
    def all_networks(self) -> list[NetworkRecord]: ...
    def remove_network(self, name: str) -> None: ...


@runtime_checkable
class Engine(InventoryEngine, Protocol):
    """The engine operations StackHub uses: its own objects, plus the whole inventory."""

    def ping(self) -> str: ...
    def probe(self, timeout: float) -> None: ...
    def image_present(self, ref: str) -> bool: ...
    def pull(self, ref: str, report: Callable[[PullProgress], None]) -> None: ...
    def containers(self, *, managed_only: bool = True) -> list[ContainerInfo]: ...
    def managed_networks(self) -> list[tuple[str, str | None]]: ...
    def managed_volumes(self) -> list[tuple[str, str | None]]: ...
    def events(self, stop: threading.Event) -> Iterator[dict[str, Any]]: ...


class _LayerTally:
    """Sum per-layer byte counts of a pull stream into one percentage."""

    def __init__(self) -> None:
        self.total: dict[str, int] = {}
        self.current: dict[str, int] = {}
        self.done: set[str] = set()

    def feed(self, event: dict[str, Any]) -> None:
        layer = event.get("id")
        status = str(event.get("status", ""))
        if not layer or status.startswith("Pulling from"):
            return
        detail = event.get("progressDetail") or {}
        if status.startswith("Downloading") and detail.get("total"):
            self.total[layer] = int(detail["total"])
            self.current[layer] = int(detail.get("current", 0))
        elif status in ("Download complete", "Verifying Checksum"):
            self.current[layer] = self.total.get(layer, self.current.get(layer, 0))
        elif status in ("Pull complete", "Already exists"):
            self.done.add(layer)
            self.total.setdefault(layer, 0)
        elif status in ("Pulling fs layer", "Waiting"):
            self.total.setdefault(layer, 0)

    def percent(self) -> float:
        layers = set(self.total) | self.done
        if not layers:
            return 0.0
        # downloading is 80% of the work per layer, extraction (pull complete) the rest
        score = 0.0
        for layer in layers:
            if layer in self.done:
                score += 1.0
            elif self.total.get(layer):
                score += 0.8 * min(1.0, self.current.get(layer, 0) / self.total[layer])
        return round(100.0 * score / len(layers), 1)


class EngineInfo(_Record):
    """What `docker info` says about the engine (for `stackhub doctor`)."""

    server_version: str = ""
    api_version: str = ""
    storage_driver: str = ""
    cgroup_version: str = ""
    root_dir: str = ""

    @classmethod
    def from_api(cls, raw: Mapping[str, Any], api_version: str) -> EngineInfo:
        """Read the fields of the engine's ``GET /info`` answer."""
        return cls(server_version=str(raw.get("ServerVersion") or ""), api_version=api_version,
                   storage_driver=str(raw.get("Driver") or ""),
                   cgroup_version=str(raw.get("CgroupVersion") or ""),
                   root_dir=str(raw.get("DockerRootDir") or ""))


DEPENDS_ON = "com.docker.compose.depends_on"


def _by_levels(ids: dict[str, list[str]], needs: dict[str, set[str]],
               act: Callable[[str], None], *, dependents_first: bool) -> None:
    """Run `act` on each container of each service, level by level in dependency order
    (dependents first for a stop, dependencies first for a start), a level in parallel.

    `ids` maps services to container ids, `needs` services to those they depend on; a
    dependency cycle (or one outside the project) just runs the rest together.
    """
    left = set(ids)
    while left:
        if dependents_first:
            level = {s for s in left if not any(s in needs.get(o, set()) for o in left - {s})}
        else:
            level = {s for s in left if not (needs.get(s, set()) & (left - {s}))}
        level = level or left
        with ThreadPoolExecutor(max_workers=8) as pool:
            done = [pool.submit(act, ref) for service in level for ref in ids[service]]
            for future in done:
                future.result()
        left -= level


def _unix_socket(base_url: str | None) -> str | None:
    """Return the engine's unix socket path, or None when it is reached another way (tcp, TLS)."""
    url = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    for scheme in ("unix://", "http+unix://"):
        if url.startswith(scheme):
            return url[len(scheme):] or None
    return None


_PING = docker_socket.request("GET", "/_ping")


def _raw_ping(path: str, timeout: float) -> None:
    """``GET /_ping`` over a fresh unix socket: a ping every 0.25 s must cost next to nothing.

    An HTTP library costs ~2 ms of CPU per ping (over half of the idle server's CPU); this is a
    connect, one small write and one read, with `timeout` bounding the whole exchange.
    """
    code, status = docker_socket.status(docker_socket.first_reply(path, _PING, timeout))
    if code != 200:
        raise docker_socket.unreachable(f"ping answered {status or 'no answer'}")


EVENTS_READ_TIMEOUT = 60.0
"""Seconds a raw event window may wait for a read (the SDK client's timeout; pings tell a hung
engine apart much sooner)."""


def _raw_events(path: str, since: float, until: float,
                filters: Mapping[str, list[str]]) -> Iterator[dict[str, Any]]:
    """Yield the engine's events of one since/until window over a fresh unix socket.

    The idle server reads one window a second: through docker-py's requests stack that cost
    ~2.5 ms of CPU each (~0.25 % of a core), here ~0.3 ms. An HTTP/1.0 request gets a plain
    body, one JSON event a line, closed by the engine at `until`.
    """
    query = urllib.parse.urlencode({"since": f"{since:.6f}", "until": f"{until:.6f}",
                                    "filters": json.dumps(dict(filters))})
    head, body = docker_socket.split_head(docker_socket.exchange(
        path, docker_socket.request("GET", f"/events?{query}"), EVENTS_READ_TIMEOUT))
    code, status = docker_socket.status(head)
    if code == 0:
        raise docker_socket.lost(f"the event stream answered {status[:80]!r}" if status
                                 else "no answer to the event stream")
    if code != 200:
        raise EngineError(f"the engine refused the event stream: {status}")
    buffer = b""
    try:
        for chunk in body:  # read as it comes: events are yielded during the window
            *lines, buffer = (buffer + chunk).split(b"\n")
            yield from (json.loads(line) for line in lines if line.strip())
        if buffer.strip():
            yield json.loads(buffer)
    except ValueError as err:  # a body that is not JSON lines
        raise EngineUnavailable("lost the engine's event stream (not JSON lines)") from err


RAW_READ_TIMEOUT = 60.0
"""Seconds a raw read may wait for the engine (the SDK client's timeout)."""


def _raw_get(path: str, target: str, params: Mapping[str, str]) -> Any:
    """``GET target?params`` over a fresh unix socket; return the answer's JSON.

    The idle server's engine reads (the status cache's container list, the network and volume
    inventory, the disk sampler's ``/system/df``) go this way, so a server on a unix socket
    loads no docker-py (with requests: ~6 MB resident). Same requests and answers as the SDK's:
    an unversioned path is the engine's own API version, which is what ``version="auto"``
    negotiates; errors read as `DockerEngine._call` words them.
    """
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    answer = b"".join(docker_socket.exchange(  # HTTP/1.0: the engine closes after the body
        path, docker_socket.request("GET", target + query), RAW_READ_TIMEOUT))
    head, _, body = answer.partition(b"\r\n\r\n")
    code, status = docker_socket.status(head)
    if code == 0:
        raise docker_socket.lost(f"it answered {status[:80]!r}" if status else "no answer")
    try:
        data = json.loads(body) if body.strip() else None
    except ValueError:
        data = None
    if 200 <= code < 300 and (data is not None or not body.strip()):
        return data
    message = docker_socket.message(body) or status
    if code == 404:
        raise NotFound(message)
    raise EngineError(f"the engine refused: {message}")


class DockerEngine:
    """The Docker Engine adapter, negotiating the API version with the daemon."""

    def __init__(self, base_url: str | None = None, *, install: str | None = None) -> None:
        """Remember where the engine is; connect lazily.

        With `install`, "managed" means created by this StackHub data root only, so two
        installations (or test servers) sharing one engine never touch each other's objects.
        """
        self._base_url = base_url
        self._managed = [f"{labels.MANAGED}=true"]
        if install:
            self._managed.append(f"{labels.INSTALL}={install}")
        self._client: docker.DockerClient | None = None
        self._probe: docker.APIClient | None = None
        self._probe_timeout = 0.0
        self._lock = threading.Lock()
        self._probe_lock = threading.Lock()  # not _lock: version negotiation may hold that
        self._rootless: bool | None = None  # asked once (local_volume_path)

    def _api(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    if self._base_url:
                        self._client = docker.DockerClient(base_url=self._base_url,
                                                           version="auto", timeout=60)
                    else:
                        self._client = docker.from_env(version="auto", timeout=60)
                    # no kept-alive connections: a stopping dockerd closes its socket but keeps
                    # serving open ones, which would hide that it is going away
                    self._client.api.headers["Connection"] = "close"
                except docker.errors.DockerException as err:
                    raise docker_socket.unreachable(_short(err)) from err
            return self._client.api

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except docker.errors.NotFound as err:
            raise NotFound(_short(err)) from err
        except (requests.exceptions.ConnectionError, ConnectionError) as err:
            self._client = None
            raise docker_socket.lost() from err
        except requests.exceptions.Timeout as err:  # a hung (e.g. SIGSTOPped) dockerd
            raise docker_socket.hung() from err
        except docker.errors.APIError as err:
            raise EngineError(f"the engine refused: {_short(err)}") from err
        except docker.errors.DockerException as err:
            self._client = None
            raise EngineUnavailable(f"the Docker engine is not reachable ({_short(err)})") from err

    def ping(self) -> str:
        """Check the engine answers; return its API version."""
        api = self._api()
        self._call(api.ping)
        return str(api.api_version)

    def probe(self, timeout: float) -> None:
        """Ask the engine's ``/_ping`` with a short timeout; raise EngineUnavailable if no answer.

        Uses a client of its own with a fixed API version (no version negotiation, which would
        wait the long timeout) and without the shared client's lock, so a hung engine is told
        apart within `timeout` while long operations keep their own long timeout.
        """
        socket_path = _unix_socket(self._base_url)
        if socket_path is not None:
            _raw_ping(socket_path, timeout)
            return
        with self._probe_lock:
            if self._probe is None or self._probe_timeout != timeout:
                kwargs: dict[str, Any] = ({"base_url": self._base_url} if self._base_url
                                          else dict(docker.utils.kwargs_from_env()))
                make: Any = docker.APIClient  # its stub wants an int timeout; requests takes floats
                try:
                    self._probe = make(version=PROBE_API, timeout=timeout, **kwargs)
                    self._probe_timeout = timeout
                except docker.errors.DockerException as err:
                    raise docker_socket.unreachable(_short(err)) from err
                self._probe.headers["Connection"] = "close"
            client = self._probe
        try:
            client.ping()
        except requests.exceptions.Timeout as err:
            raise docker_socket.hung(f"no reply within {timeout:g} s") from err
        except (requests.exceptions.RequestException, ConnectionError,
                docker.errors.DockerException) as err:
            raise docker_socket.unreachable(_short(err)) from err

    def info(self) -> EngineInfo:
        """Return the engine's version, storage driver, cgroup version and root folder."""
        api = self._api()
        return EngineInfo.from_api(self._call(api.info), str(api.api_version))

    def image_present(self, ref: str) -> bool:
        """Tell whether an image is in the engine's local store."""
        api = self._api()
        try:
            self._call(lambda: api.inspect_image(ref))
        except NotFound:
            return False
        return True

    def pull(self, ref: str, report: Callable[[PullProgress], None]) -> None:
        """Pull an image, reporting layer progress as a percentage."""
        api = self._api()
        tally = _LayerTally()

        def run() -> None:
            for event in api.pull(ref, stream=True, decode=True):
                if "error" in event:
                    raise ImagePullFailed(f"could not pull image {ref}: {event['error']}")
                tally.feed(event)
                report(PullProgress(image=ref, percent=tally.percent(),
                                    status=str(event.get("status", "")),
                                    layers_done=len(tally.done),
                                    layers_total=len(set(tally.total) | tally.done)))

        try:
            self._call(run)
        except ImagePullFailed:
            raise
        except (NotFound, EngineError) as err:
            raise ImagePullFailed(f"could not pull image {ref}: {err.message}") from err
        report(PullProgress(image=ref, percent=100.0, status="done",
                            layers_done=len(tally.done), layers_total=len(tally.done)))

    def _read(self, target: str, params: Mapping[str, str], sdk: Callable[[Any], Any]) -> Any:
        """GET `target` raw on a unix socket (`_raw_get`), else ``sdk(api)`` through docker-py."""
        socket_path = _unix_socket(self._base_url)
        if socket_path is not None:
            return _raw_get(socket_path, target, params)
        api = self._api()
        return self._call(lambda: sdk(api))

    def containers(self, *, managed_only: bool = True) -> list[ContainerInfo]:
        """List containers (all states), by default only StackHub's."""
        filters = {"label": self._managed} if managed_only else {}
        params = {"all": "1", **({"filters": json.dumps(filters)} if filters else {})}
        raw = self._read("/containers/json", params,
                         lambda api: api.containers(all=True, filters=filters))
        return [_container(item) for item in raw]

    def managed_networks(self) -> list[tuple[str, str | None]]:
        """List StackHub's networks as (name, instance)."""
        filters = {"label": self._managed}
        raw = self._read("/networks", {"filters": json.dumps(filters)},
                         lambda api: api.networks(filters=filters))
        return [(n["Name"], (n.get("Labels") or {}).get(labels.INSTANCE)) for n in raw]

    def managed_volumes(self) -> list[tuple[str, str | None]]:
        """List StackHub's volumes as (name, instance)."""
        filters = {"label": self._managed}
        raw = self._read("/volumes", {"filters": json.dumps(filters)},
                         lambda api: api.volumes(filters=filters))
        return [(v["Name"], (v.get("Labels") or {}).get(labels.INSTANCE))
                for v in (raw or {}).get("Volumes") or []]

    def remove_network(self, name: str) -> None:
        """Remove a network by name."""
        api = self._api()
        self._call(lambda: api.remove_network(name))

    def remove_volume(self, name: str) -> None:
        """Remove a volume by name."""
        api = self._api()
        self._call(lambda: api.remove_volume(name, force=True))

    def events(self, stop: threading.Event, window: float = 1.0) -> Iterator[dict[str, Any]]:
        """Yield container events of StackHub's containers until `stop` is set.

        Events are read in short since/until windows so a stop takes effect within `window`,
        and so is an engine going away: a stopping dockerd keeps open streams open. On a unix
        socket each window is one raw request (`_raw_events`); otherwise through docker-py.
        """
        since = time.time()
        filters = {"type": ["container"], "label": self._managed}
        socket_path = _unix_socket(self._base_url)
        if socket_path is not None:
            while not stop.is_set():
                until = time.time() + window
                yield from _raw_events(socket_path, since, until, filters)
                since = until
            return
        api = self._api()
        while not stop.is_set():
            until = time.time() + window
            stream = self._call(functools.partial(
                api.events, since=f"{since:.6f}", until=f"{until:.6f}", decode=True,
                filters=filters))
            try:
                yield from stream
            except (requests.exceptions.RequestException, docker.errors.DockerException) as err:
                raise EngineUnavailable("lost the engine's event stream") from err
            finally:
                stream.close()
            since = until

    # -- engine inventory for the admin's container view (system domain) --------------------

    def _checked(self, fn: Callable[[], Any]) -> Any:
        """Like _call, but an engine 409 (in use, already stopped...) becomes Conflict."""
        try:
            return self._call(fn)
        except EngineError as err:
            cause = err.__cause__
            if isinstance(cause, docker.errors.APIError) and cause.status_code == 409:
                raise Conflict(_short(cause)) from cause
            raise

    def all_containers(self) -> list[ContainerRecord]:
        """List every container of the engine (all states)."""
        api = self._api()
        return [ContainerRecord.from_api(raw) for raw in self._call(lambda: api.containers(
            all=True))]

    def inspect_container(self, ref: str) -> ContainerDetailRecord:
        """Return the engine's full description of one container."""
        api = self._api()
        return ContainerDetailRecord.from_api(self._call(lambda: api.inspect_container(ref)))

    def container_action(self, ref: str, action: str, *, timeout: int | None = None) -> None:
        """Start, stop or restart one container (`timeout` None: its own stop timeout)."""
        api = self._api()
        if action == "start":
            self._checked(lambda: api.start(ref))
        elif action == "stop":
            self._checked(lambda: api.stop(ref, timeout=timeout))
        elif action == "restart":
            if timeout is None:  # docker-py's restart needs a number: use the container's own
                timeout = self.inspect_container(ref).stop_timeout or 10
            self._checked(lambda: api.restart(ref, timeout=timeout))
        else:
            raise ValueError(f"unknown container action {action!r}")

    def remove_container(self, ref: str, *, force: bool = False) -> None:
        """Remove one container (force also stops a running one)."""
        api = self._api()
        self._checked(lambda: api.remove_container(ref, force=force))

    def all_images(self) -> list[ImageRecord]:
        """List the engine's images (without intermediate layers)."""
        api = self._api()
        return [ImageRecord.from_api(raw) for raw in self._call(lambda: api.images())]

    def remove_image(self, ref: str, *, force: bool = False) -> None:
        """Remove one image by id or reference."""
        api = self._api()
        self._checked(lambda: api.remove_image(ref, force=force))

    def prune_images(self, *, dangling_only: bool = True) -> PruneRecord:
        """Delete unused images (only untagged ones unless `dangling_only` is false)."""
        api = self._api()
        filters = {"dangling": dangling_only}
        return PruneRecord.from_api(self._checked(lambda: api.prune_images(filters=filters)))

    def all_volumes(self) -> list[VolumeRecord]:
        """List every volume of the engine."""
        api = self._api()
        raw = self._call(api.volumes) or {}
        return [VolumeRecord.from_api(item) for item in raw.get("Volumes") or []]

    def all_networks(self) -> list[NetworkRecord]:
        """List every network of the engine."""
        api = self._api()
        return [NetworkRecord.from_api(raw) for raw in self._call(api.networks)]

    def volume_sizes(self) -> dict[str, int]:
        """Map volume names to their size in bytes (the engine's disk usage; -1 unknown)."""
        raw = self._read("/system/df", {}, lambda api: api.df()) or {}
        return {str(v["Name"]): int((v.get("UsageData") or {}).get("Size", -1))
                for v in raw.get("Volumes") or [] if v.get("Name")}

    def local_volume_path(self, name: str) -> Path | None:
        """Return where a named volume's files are, when StackHub may read them in place.

        Only for a local-driver volume without options (no bind or NFS mount behind it) of an
        engine on this machine's unix socket that is not rootless, with StackHub running as
        root and the folder present; None otherwise (then volumes go through a helper).
        """
        if _unix_socket(self._base_url) is None or os.geteuid() != 0:
            return None
        api = self._api()
        if self._rootless is None:
            options = self._call(api.info).get("SecurityOptions") or []
            self._rootless = any("rootless" in str(o) for o in options)
        if self._rootless:
            return None
        raw = self._call(lambda: api.inspect_volume(name))
        if (raw.get("Driver") or "local") != "local" or raw.get("Options"):
            return None
        path = Path(str(raw.get("Mountpoint") or ""))
        if not path.is_absolute() or path.is_symlink() or not path.is_dir():
            return None
        return path

    def stop_project(self, project: str) -> int:
        """Stop a Compose project's running containers through the API, as `compose stop` does.

        Services are stopped dependents first (from Compose's `depends_on` label), the
        containers of one level in parallel, each with its own stop timeout (the service's
        `stop_grace_period`); returns how many were stopped. Saves starting a Compose process.
        """
        api = self._api()
        raw = self._call(lambda: api.containers(filters={"label": [
            f"{labels.COMPOSE_PROJECT}={project}", *self._managed]}))
        needs: dict[str, set[str]] = {}
        ids: dict[str, list[str]] = {}
        for item in raw or []:
            tags = item.get("Labels") or {}
            service = str(tags.get(labels.COMPOSE_SERVICE) or item["Id"])
            ids.setdefault(service, []).append(str(item["Id"]))
            needs.setdefault(service, set()).update(
                d.split(":", 1)[0] for d in str(tags.get(DEPENDS_ON) or "").split(",") if d)
        _by_levels(ids, needs, lambda ref: self._stop_one(api, ref), dependents_first=True)
        return sum(len(v) for v in ids.values())

    def start_project(self, project: str) -> int | None:
        """Start a Compose project's containers through the API, as `compose start` does.

        Services start after those they depend on, the containers of one level in parallel;
        returns how many were started. None (nothing started) when a service waits for a
        condition (`service_healthy`, `service_completed_successfully`): Compose waits for
        those, so the caller runs `compose start`. Saves starting a Compose process.
        """
        api = self._api()
        raw = self._call(lambda: api.containers(all=True, filters={"label": [
            f"{labels.COMPOSE_PROJECT}={project}", *self._managed]}))
        needs: dict[str, set[str]] = {}
        ids: dict[str, list[str]] = {}
        for item in raw or []:
            tags = item.get("Labels") or {}
            if str(tags.get(labels.COMPOSE_ONEOFF) or "").lower() == "true":
                continue  # a `compose run` container: `compose start` leaves it alone
            service = str(tags.get(labels.COMPOSE_SERVICE) or item["Id"])
            ids.setdefault(service, []).append(str(item["Id"]))
            for dep in str(tags.get(DEPENDS_ON) or "").split(","):
                name, _, rest = dep.partition(":")
                if name and rest.split(":", 1)[0] not in ("", "service_started"):
                    return None
                if name:
                    needs.setdefault(service, set()).add(name)
        _by_levels(ids, needs, lambda ref: self._start_one(api, ref), dependents_first=False)
        return sum(len(v) for v in ids.values())

    def _start_one(self, api: Any, ref: str) -> None:
        """Start one container (one already running is fine)."""
        self._call(lambda: api.start(ref))

    def _stop_one(self, api: Any, ref: str) -> None:
        """Stop one container with its own stop timeout; one already gone is fine."""
        with contextlib.suppress(NotFound):
            config = self._call(lambda: api.inspect_container(ref)).get("Config") or {}
            grace = config.get("StopTimeout")
            self._call(lambda: api.stop(ref, timeout=int(grace) if grace is not None else 10))

    # -- the store-script sandbox (adapters/sandbox.py) ------------------------------------

    def image_label(self, ref: str, key: str) -> str | None:
        """Return one label of a local image (None if the image or label is absent)."""
        api = self._api()
        try:
            raw = self._call(lambda: api.inspect_image(ref))
        except NotFound:
            return None
        value = ((raw.get("Config") or {}).get("Labels") or {}).get(key)
        return None if value is None else str(value)

    def import_rootfs(self, tar_path: Path, ref: str, changes: list[str]) -> None:
        """Import a root filesystem tarball as image `ref` (``docker import``)."""
        api = self._api()
        repository, _, tag = ref.rpartition(":")
        self._call(lambda: api.import_image_from_file(str(tar_path), repository=repository,
                                                      tag=tag, changes=changes))

    def _sweep_sandboxes(self, api: Any) -> None:
        """Remove stopped sandbox containers a lost engine connection left (never running ones:
        they may be another run's)."""
        with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
            for status in ("exited", "dead"):  # not "created": a run about to start
                for item in api.containers(all=True, filters={
                        "label": f"{sandbox.SANDBOX_LABEL}=true", "status": status}):
                    with contextlib.suppress(docker.errors.APIError):
                        api.remove_container(item["Id"], force=True)

    def run_limited(self, image: str, spec: sandbox.RunSpec) -> sandbox.RunResult:
        """Run a throwaway container with the sandbox's limits; always remove it.

        Output is read live from the attach stream (no log driver) and capped; at the
        wall-clock limit the container is killed and the result says so.
        """
        api = self._api()
        self._sweep_sandboxes(api)
        host = api.create_host_config(**sandbox.host_config_args(spec))
        created = self._call(lambda: api.create_container(
            image, command=spec.command, user="0:0", environment=spec.env,
            working_dir=spec.workdir, network_disabled=True, host_config=host,
            labels={**spec.labels, sandbox.SANDBOX_LABEL: "true"}, stdin_open=False, tty=False))
        cid = created["Id"]
        try:
            frames = self._call(lambda: api.attach(cid, stdout=True, stderr=True, stream=True,
                                                   logs=False, demux=True))
            reader = sandbox.Reader(frames)
            started = time.monotonic()
            self._call(lambda: api.start(cid))
            timed_out = False
            code: int | None = None
            try:
                status = api.wait(cid, timeout=spec.limits.timeout)
                code = int(status.get("StatusCode", -1))
            except requests.exceptions.RequestException:
                timed_out = True
                with contextlib.suppress(docker.errors.APIError,
                                         requests.exceptions.RequestException):
                    api.kill(cid)
            reader.join(sandbox.wait_deadline(started, spec.limits) if not timed_out else 5.0)
            oom = False
            with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
                oom = bool((api.inspect_container(cid).get("State") or {}).get("OOMKilled"))
            return sandbox.RunResult(exit_code=code, stdout=bytes(reader.stdout),
                                     log=reader.log(), timed_out=timed_out,
                                     stdout_overflow=reader.overflow, oom_killed=oom)
        finally:
            with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
                api.remove_container(cid, force=True)

def _short(err: Exception) -> str:
    text = getattr(err, "explanation", None) or str(err)
    return str(text).strip().splitlines()[0][:300] if str(text).strip() else type(err).__name__
