"""Show and act on the engine's containers, images, volumes and networks (admin view)."""

from __future__ import annotations

import re

from stackhub import labels
from stackhub.adapters.engine import (
    ContainerDetailRecord,
    ContainerRecord,
    InventoryEngine,
    PortBinding,
)
from stackhub.errors import Conflict, Invalid
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
REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,254}$")


def check_ref(ref: str) -> str:
    """Refuse ids and names that no engine object can have."""
    if not REF.match(ref):
        raise Invalid(f"{ref[:80]!r} is not a container, image, volume or network name or id")
    return ref


def _managed(lbl: dict[str, str]) -> tuple[bool, str | None]:
    return lbl.get(labels.MANAGED) == "true", lbl.get(labels.INSTANCE)


def _ports(bindings: list[PortBinding]) -> list[PortRead]:
    """Keep one entry per published port (the engine lists IPv4 and IPv6 bindings apart)."""
    seen: set[tuple[int, str, int | None]] = set()
    out = []
    for port in bindings:
        key = (port.container_port, port.protocol, port.host_port)
        if key not in seen:
            seen.add(key)
            out.append(PortRead(container_port=port.container_port, protocol=port.protocol,
                                host_ip=port.host_ip, host_port=port.host_port))
    return out


def _summary(record: ContainerRecord) -> ContainerSummary:
    managed, instance = _managed(record.labels)
    return ContainerSummary(
        id=record.id, short_id=record.id[:12], name=record.name, image=record.image,
        state=record.state, status=record.status, health=record.health, created=record.created,
        ports=_ports(record.ports), networks=record.networks, managed=managed,
        instance=instance, project=record.labels.get(labels.COMPOSE_PROJECT),
        service=record.labels.get(labels.COMPOSE_SERVICE))


def list_containers(*, engine: InventoryEngine) -> list[ContainerSummary]:
    """List every container, StackHub's first, then by name."""
    found = [_summary(record) for record in engine.all_containers()]
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


def _detail(record: ContainerDetailRecord,
            secrets: frozenset[str] = frozenset()) -> ContainerDetail:
    managed, instance = _managed(record.labels)
    attached = [ContainerNetwork(name=n.name, ip_address=n.ip_address) for n in record.networks]
    mounts = [MountRead(type=m.type, source=m.source, destination=m.destination, name=m.name,
                        read_only=m.read_only) for m in record.mounts]
    return ContainerDetail(
        id=record.id, short_id=record.id[:12], name=record.name, image=record.image,
        image_id=record.image_id, state=record.state, status=record.state, health=record.health,
        created=0, ports=_ports(record.ports), networks=[a.name for a in attached],
        managed=managed, instance=instance, project=record.labels.get(labels.COMPOSE_PROJECT),
        service=record.labels.get(labels.COMPOSE_SERVICE),
        command=[_mask(c, secrets) for c in record.command],
        entrypoint=[_mask(c, secrets) for c in record.entrypoint],
        env=_env(record.env, secrets), labels=dict(record.labels), mounts=mounts,
        attached=attached, restart_policy=record.restart_policy,
        started_at=record.started_at, finished_at=record.finished_at,
        exit_code=record.exit_code, restart_count=record.restart_count)


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
    for container in engine.all_containers():
        users[container.image_id] = users.get(container.image_id, 0) + 1
        if _managed(container.labels)[0]:
            managed_ids.add(container.image_id)
    images = [ImageSummary(
        id=image.id, short_id=image.id.removeprefix("sha256:")[:12], tags=image.tags,
        size=image.size, created=image.created, containers=users.get(image.id, 0),
        managed=image.id in managed_ids, dangling=not image.tags)
        for image in engine.all_images()]
    return sorted(images, key=lambda i: (i.tags[0] if i.tags else "~", i.id))


def remove_image(*, engine: InventoryEngine, ref: str) -> None:
    """Remove an image no container uses."""
    engine.remove_image(check_ref(ref))


def prune_images(*, engine: InventoryEngine, all_unused: bool = False) -> PruneResult:
    """Delete dangling images, or every image no container uses when `all_unused`."""
    pruned = engine.prune_images(dangling_only=not all_unused)
    return PruneResult(deleted=pruned.deleted, space_reclaimed=pruned.space_reclaimed)


def list_volumes(*, engine: InventoryEngine) -> list[VolumeSummary]:
    """List volumes with how many containers mount each."""
    usage: dict[str, int] = {}
    for container in engine.all_containers():
        for mount in container.mounts:
            if mount.type == "volume" and mount.name:
                usage[mount.name] = usage.get(mount.name, 0) + 1
    volumes = []
    for volume in engine.all_volumes():
        managed, instance = _managed(volume.labels)
        volumes.append(VolumeSummary(
            name=volume.name, driver=volume.driver, mountpoint=volume.mountpoint,
            created=volume.created, containers=usage.get(volume.name, 0), managed=managed,
            instance=instance))
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
    for container in engine.all_containers():
        for name in container.networks:
            usage[name] = usage.get(name, 0) + 1
    networks = []
    for network in engine.all_networks():
        managed, instance = _managed(network.labels)
        networks.append(NetworkSummary(
            id=network.id, short_id=network.id[:12], name=network.name, driver=network.driver,
            scope=network.scope, internal=network.internal,
            builtin=network.name in BUILTIN_NETWORKS, containers=usage.get(network.name, 0),
            managed=managed, instance=instance))
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
