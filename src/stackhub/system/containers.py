"""Show and act on the engine's containers, images, volumes and networks (admin view)."""

from __future__ import annotations

import re
from typing import Any, Protocol, runtime_checkable

from stackhub import labels
from stackhub.errors import Conflict, EngineUnavailable, Invalid
from stackhub.system.models import (
    ContainerDetail,
    ContainerNetwork,
    ContainerSummary,
    EnvVar,
    ImageSummary,
    MountRead,
    NetworkSummary,
    PortRead,
    PruneResult,
    VolumeSummary,
)

ACTIONS = ("start", "stop", "restart")
BUILTIN_NETWORKS = ("bridge", "host", "none")
REDACTED = "********"
SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|SALT|SEED|PRIVATE|CREDENTIAL|AUTH", re.I)
_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")
REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,254}$")


@runtime_checkable
class InventoryEngine(Protocol):
    """The engine calls the containers view needs (the Docker adapter has them)."""

    def all_containers(self) -> list[dict[str, Any]]: ...
    def inspect_container(self, ref: str) -> dict[str, Any]: ...
    def container_action(self, ref: str, action: str, *, timeout: int | None = None) -> None: ...
    def remove_container(self, ref: str, *, force: bool = False) -> None: ...
    def all_images(self) -> list[dict[str, Any]]: ...
    def remove_image(self, ref: str, *, force: bool = False) -> None: ...
    def prune_images(self, *, dangling_only: bool = True) -> dict[str, Any]: ...
    def all_volumes(self) -> list[dict[str, Any]]: ...
    def remove_volume(self, name: str) -> None: ...
    def all_networks(self) -> list[dict[str, Any]]: ...
    def remove_network(self, name: str) -> None: ...


def inventory(engine: object) -> InventoryEngine:
    """Return `engine` as an inventory engine, or explain that it cannot list one."""
    if not isinstance(engine, InventoryEngine):
        raise EngineUnavailable("this engine does not support the containers view")
    return engine


def check_ref(ref: str) -> str:
    """Refuse ids and names that no engine object can have."""
    if not REF.match(ref):
        raise Invalid(f"{ref[:80]!r} is not a container, image, volume or network name or id")
    return ref


def _managed(lbl: dict[str, str] | None) -> tuple[bool, str | None]:
    lbl = lbl or {}
    return lbl.get(labels.MANAGED) == "true", lbl.get(labels.INSTANCE)


def _unique(ports: list[PortRead]) -> list[PortRead]:
    """Keep one entry per published port (the engine lists IPv4 and IPv6 bindings apart)."""
    seen: set[tuple[int, str, int | None]] = set()
    out = []
    for port in ports:
        key = (port.container_port, port.protocol, port.host_port)
        if key not in seen:
            seen.add(key)
            out.append(port)
    return out


def _summary(raw: dict[str, Any]) -> ContainerSummary:
    lbl = raw.get("Labels") or {}
    managed, instance = _managed(lbl)
    status = str(raw.get("Status", ""))
    match = _HEALTH.search(status)
    ports = _unique([PortRead(container_port=int(p.get("PrivatePort", 0)),
                              protocol=p.get("Type", "tcp"), host_ip=p.get("IP"),
                              host_port=p.get("PublicPort")) for p in raw.get("Ports") or []])
    names = raw.get("Names") or ["/" + str(raw["Id"])[:12]]
    networks = sorted(((raw.get("NetworkSettings") or {}).get("Networks") or {}).keys())
    return ContainerSummary(
        id=raw["Id"], short_id=str(raw["Id"])[:12], name=str(names[0]).lstrip("/"),
        image=str(raw.get("Image", "")), state=str(raw.get("State", "")), status=status,
        health=None if match is None else match.group(1).replace("health: ", ""),
        created=int(raw.get("Created") or 0), ports=ports, networks=networks, managed=managed,
        instance=instance, project=lbl.get(labels.COMPOSE_PROJECT),
        service=lbl.get(labels.COMPOSE_SERVICE))


def list_containers(*, engine: InventoryEngine) -> list[ContainerSummary]:
    """List every container, StackHub's first, then by name."""
    found = [_summary(raw) for raw in engine.all_containers()]
    return sorted(found, key=lambda c: (not c.managed, c.instance or "", c.name))


def _mask(text: str, secrets: frozenset[str]) -> str:
    """Replace every known secret value inside `text`."""
    for value in sorted(secrets, key=len, reverse=True):
        if len(value) >= 4 and value in text:
            text = text.replace(value, REDACTED)
    return text


def _env(items: list[str], secrets: frozenset[str]) -> list[EnvVar]:
    env = []
    for item in items:
        name, _, value = item.partition("=")
        masked = _mask(value, secrets)
        secret = (bool(SECRET_NAME.search(name)) and value != "") or masked != value
        env.append(EnvVar(name=name, value=REDACTED if secret and masked == value else masked,
                          redacted=secret))
    return env


def _detail(raw: dict[str, Any], secrets: frozenset[str] = frozenset()) -> ContainerDetail:
    config = raw.get("Config") or {}
    state = raw.get("State") or {}
    lbl = config.get("Labels") or {}
    managed, instance = _managed(lbl)
    net = raw.get("NetworkSettings") or {}
    ports: list[PortRead] = []
    for key, bindings in sorted((net.get("Ports") or {}).items()):
        port, _, proto = str(key).partition("/")
        for binding in bindings or [None]:
            ports.append(PortRead(container_port=int(port), protocol=proto or "tcp",
                                  host_ip=(binding or {}).get("HostIp") or None,
                                  host_port=int((binding or {}).get("HostPort") or 0) or None))
    ports = _unique(ports)
    attached = [ContainerNetwork(name=name, ip_address=str((info or {}).get("IPAddress") or ""))
                for name, info in sorted((net.get("Networks") or {}).items())]
    mounts = [MountRead(type=str(m.get("Type", "")), source=str(m.get("Source", "")),
                        destination=str(m.get("Destination", "")), name=m.get("Name"),
                        read_only=not m.get("RW", True)) for m in raw.get("Mounts") or []]
    health = (state.get("Health") or {}).get("Status")
    status = str(state.get("Status", ""))
    return ContainerDetail(
        id=raw["Id"], short_id=str(raw["Id"])[:12], name=str(raw.get("Name", "")).lstrip("/"),
        image=str(config.get("Image", "")), image_id=str(raw.get("Image", "")), state=status,
        status=status, health=health, created=0, ports=ports,
        networks=[a.name for a in attached], managed=managed, instance=instance,
        project=lbl.get(labels.COMPOSE_PROJECT), service=lbl.get(labels.COMPOSE_SERVICE),
        command=[_mask(str(c), secrets) for c in config.get("Cmd") or []],
        entrypoint=[_mask(str(c), secrets) for c in config.get("Entrypoint") or []],
        env=_env([str(e) for e in config.get("Env") or []], secrets), labels=dict(lbl),
        mounts=mounts, attached=attached,
        restart_policy=str(((raw.get("HostConfig") or {}).get("RestartPolicy") or {})
                           .get("Name") or "no"),
        started_at=state.get("StartedAt"), finished_at=state.get("FinishedAt"),
        exit_code=state.get("ExitCode"), restart_count=int(raw.get("RestartCount") or 0))


def inspect_container(*, engine: InventoryEngine, ref: str,
                      secrets: frozenset[str] = frozenset()) -> ContainerDetail:
    """Describe one container; values holding any of `secrets` are masked."""
    return _detail(engine.inspect_container(check_ref(ref)), secrets)


def container_action(*, engine: InventoryEngine, ref: str, action: str) -> ContainerDetail:
    """Start, stop or restart one container and return its new state."""
    if action not in ACTIONS:
        raise Invalid(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
    engine.container_action(check_ref(ref), action)
    return inspect_container(engine=engine, ref=ref)


def _refuse_managed(kind: str, name: str, instance: str | None) -> None:
    owner = f"instance {instance!r}" if instance else "a StackHub instance"
    raise Conflict(f"{kind} {name} belongs to {owner}; remove or change it from the instance "
                   "instead", details={"instance": instance})


def remove_container(*, engine: InventoryEngine, ref: str, force: bool = False) -> None:
    """Remove a container that StackHub does not manage."""
    detail = inspect_container(engine=engine, ref=ref)
    if detail.managed:
        _refuse_managed("container", detail.name, detail.instance)
    engine.remove_container(detail.id, force=force)


def list_images(*, engine: InventoryEngine) -> list[ImageSummary]:
    """List images with how many containers, and whether StackHub instances, use them."""
    users: dict[str, int] = {}
    managed_ids: set[str] = set()
    for raw in engine.all_containers():
        image_id = str(raw.get("ImageID", ""))
        users[image_id] = users.get(image_id, 0) + 1
        if _managed(raw.get("Labels"))[0]:
            managed_ids.add(image_id)
    images = []
    for raw in engine.all_images():
        tags = [t for t in raw.get("RepoTags") or [] if t != "<none>:<none>"]
        image_id = str(raw["Id"])
        images.append(ImageSummary(
            id=image_id, short_id=image_id.removeprefix("sha256:")[:12], tags=tags,
            size=int(raw.get("Size") or 0), created=int(raw.get("Created") or 0),
            containers=users.get(image_id, 0), managed=image_id in managed_ids,
            dangling=not tags))
    return sorted(images, key=lambda i: (i.tags[0] if i.tags else "~", i.id))


def remove_image(*, engine: InventoryEngine, ref: str) -> None:
    """Remove an image no container uses."""
    engine.remove_image(check_ref(ref))


def prune_images(*, engine: InventoryEngine, all_unused: bool = False) -> PruneResult:
    """Delete dangling images, or every image no container uses when `all_unused`."""
    raw = engine.prune_images(dangling_only=not all_unused)
    deleted = [str(next(iter(item.values()))) for item in raw.get("ImagesDeleted") or []
               if item]
    return PruneResult(deleted=deleted, space_reclaimed=int(raw.get("SpaceReclaimed") or 0))


def list_volumes(*, engine: InventoryEngine) -> list[VolumeSummary]:
    """List volumes with how many containers mount each."""
    usage: dict[str, int] = {}
    for raw in engine.all_containers():
        for mount in raw.get("Mounts") or []:
            if mount.get("Type") == "volume" and mount.get("Name"):
                usage[mount["Name"]] = usage.get(mount["Name"], 0) + 1
    volumes = []
    for raw in engine.all_volumes():
        managed, instance = _managed(raw.get("Labels"))
        volumes.append(VolumeSummary(
            name=raw["Name"], driver=str(raw.get("Driver", "local")),
            mountpoint=str(raw.get("Mountpoint", "")), created=raw.get("CreatedAt"),
            containers=usage.get(raw["Name"], 0), managed=managed, instance=instance))
    return sorted(volumes, key=lambda v: (not v.managed, v.name))


def remove_volume(*, engine: InventoryEngine, name: str) -> None:
    """Remove an unused volume that StackHub does not manage."""
    check_ref(name)
    for volume in list_volumes(engine=engine):
        if volume.name == name:
            if volume.managed:
                _refuse_managed("volume", name, volume.instance)
            if volume.containers:
                raise Conflict(f"volume {name} is used by {volume.containers} container(s)")
    engine.remove_volume(name)


def list_networks(*, engine: InventoryEngine) -> list[NetworkSummary]:
    """List networks with how many containers are attached to each."""
    usage: dict[str, int] = {}
    for raw in engine.all_containers():
        for name in ((raw.get("NetworkSettings") or {}).get("Networks") or {}):
            usage[name] = usage.get(name, 0) + 1
    networks = []
    for raw in engine.all_networks():
        managed, instance = _managed(raw.get("Labels"))
        name = str(raw["Name"])
        networks.append(NetworkSummary(
            id=raw["Id"], short_id=str(raw["Id"])[:12], name=name,
            driver=str(raw.get("Driver", "")), scope=str(raw.get("Scope", "local")),
            internal=bool(raw.get("Internal")), builtin=name in BUILTIN_NETWORKS,
            containers=usage.get(name, 0), managed=managed, instance=instance))
    return sorted(networks, key=lambda n: (not n.builtin, not n.managed, n.name))


def remove_network(*, engine: InventoryEngine, ref: str) -> None:
    """Remove a user network that StackHub does not manage."""
    check_ref(ref)
    for network in list_networks(engine=engine):
        if ref in (network.name, network.id, network.short_id):
            if network.builtin:
                raise Conflict(f"network {network.name} is one of the engine's own networks")
            if network.managed:
                _refuse_managed("network", network.name, network.instance)
            engine.remove_network(network.id)
            return
    engine.remove_network(ref)
