"""The admin's engine view: images, volumes and networks with who uses them, guarded removal
and a prune with a preview.

"In use" is wider than the engine's own notion: an image named in an instance's project file
is in use even while the instance has no containers (stopped and removed, being reinstalled),
and a volume or network labelled for an existing instance is in use even with no container
attached. Objects of another StackHub installation sharing the engine are never touched.
Everything here refuses, with Conflict, to remove what is in use; the prune recomputes its
plan at run time and removes only what is still unused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from stackhub import labels, yamlsafe
from stackhub.adapters.compose import COMPOSE_FILE
from stackhub.adapters.engine import InventoryEngine
from stackhub.config import Paths
from stackhub.errors import Conflict, NotFound, StackHubError
from stackhub.state.instances import Records
from stackhub.system import containers
from stackhub.system.engine_models import (
    ImageView,
    NetworkView,
    PruneItem,
    PrunePlan,
    PruneRequest,
    VolumeView,
)

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


@runtime_checkable
class SizedEngine(Protocol):
    """An engine that can report volume sizes (the engine's disk-usage call)."""

    def volume_sizes(self) -> dict[str, int]: ...


def normalise(ref: str) -> str:
    """Name an image reference the way the engine's tag list does (nginx -> nginx:latest)."""
    ref = ref.strip()
    if _DIGEST.search(ref):
        return ref
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/",
                   "index.docker.io/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix):]
            break
    last = ref.rsplit("/", 1)[-1]
    return ref if ":" in last else ref + ":latest"


@dataclass
class Usage:
    """Who uses what, from the engine's containers and the instances' project files."""

    instances: set[str]
    install: str
    image_refs: dict[str, set[str]] = field(default_factory=dict)  # ref -> instances
    image_ids: dict[str, set[str]] = field(default_factory=dict)  # id -> instances
    image_users: dict[str, int] = field(default_factory=dict)  # id -> containers
    volume_users: dict[str, int] = field(default_factory=dict)
    network_users: dict[str, int] = field(default_factory=dict)

    def owner(self, lbl: dict[str, str]) -> tuple[str | None, bool, bool]:
        """(instance, ours, orphaned) from an object's labels."""
        if lbl.get(labels.MANAGED) != "true":
            return None, False, False
        instance = lbl.get(labels.INSTANCE)
        ours = lbl.get(labels.INSTALL, self.install) == self.install
        orphaned = ours and (instance is None or instance not in self.instances)
        return instance, ours, orphaned


def _project_images(paths: Paths, name: str) -> set[str]:
    try:
        data = yamlsafe.load_mapping((paths.instance_dir(name) / COMPOSE_FILE).read_bytes(),
                                     what=f"{name}'s project")
    except (OSError, StackHubError):
        return set()
    found = set()
    for service in (data.get("services") or {}).values():
        if isinstance(service, dict) and isinstance(service.get("image"), str):
            found.add(normalise(service["image"]))
    return found


def _install_id(paths: Paths) -> str:
    try:
        return (paths.root / "install-id").read_text().strip()
    except OSError:
        return ""


def usage(engine: InventoryEngine, records: Records, paths: Paths) -> Usage:
    """Collect who uses which image, volume and network."""
    names = {record.name for record in records.all()}
    found = Usage(instances=names, install=_install_id(paths))
    for name in names:
        for ref in _project_images(paths, name):
            found.image_refs.setdefault(ref, set()).add(name)
    for container in engine.all_containers():
        found.image_users[container.image_id] = found.image_users.get(container.image_id, 0) + 1
        instance = container.labels.get(labels.INSTANCE)
        if container.labels.get(labels.MANAGED) == "true" and instance:
            found.image_ids.setdefault(container.image_id, set()).add(instance)
        for mount in container.mounts:
            if mount.type == "volume" and mount.name:
                found.volume_users[mount.name] = found.volume_users.get(mount.name, 0) + 1
        for network in container.networks:
            found.network_users[network] = found.network_users.get(network, 0) + 1
    return found


def images(engine: InventoryEngine, records: Records, paths: Paths,
           use: Usage | None = None) -> list[ImageView]:
    """Images with the instances using them (by project file or container) and in-use flag."""
    use = use or usage(engine, records, paths)
    out = []
    for image in containers.list_images(engine=engine):
        users = set(use.image_ids.get(image.id, set()))
        for tag in image.tags:
            users |= use.image_refs.get(normalise(tag), set())
        in_use = bool(users) or image.containers > 0
        out.append(ImageView(**image.model_dump(), instances=sorted(users), in_use=in_use))
    return out


def _sizes(engine: InventoryEngine) -> dict[str, int]:
    if isinstance(engine, SizedEngine):
        try:
            return engine.volume_sizes()
        except StackHubError:
            return {}
    return {}


def volumes(engine: InventoryEngine, records: Records, paths: Paths,
            use: Usage | None = None, *, sized: bool = True) -> list[VolumeView]:
    """Volumes with size, owner instance (or orphaned) and in-use flag."""
    use = use or usage(engine, records, paths)
    sizes = _sizes(engine) if sized else {}
    labelled = {v.name: v.labels for v in engine.all_volumes()}
    out = []
    for volume in containers.list_volumes(engine=engine):
        lbl = dict(labelled.get(volume.name, {}))
        project = lbl.get(labels.COMPOSE_PROJECT, "")
        instance, ours, orphaned = use.owner(lbl)
        if instance is None and project.startswith(labels.PROJECT_PREFIX):
            instance = project.removeprefix(labels.PROJECT_PREFIX)  # compose's own label
            ours = instance in use.instances
            orphaned = False
        owned = (ours and not orphaned) or (volume.managed and not ours)
        size = sizes.get(volume.name)
        out.append(VolumeView(**{**volume.model_dump(), "instance": instance},
                              size=None if size is None or size < 0 else size,
                              orphaned=orphaned, in_use=owned or volume.containers > 0))
    return out


def networks(engine: InventoryEngine, records: Records, paths: Paths,
             use: Usage | None = None) -> list[NetworkView]:
    """Networks with owner (or orphaned) and in-use flag."""
    use = use or usage(engine, records, paths)
    labelled = {n.name: n.labels for n in engine.all_networks()}
    out = []
    for network in containers.list_networks(engine=engine):
        instance, ours, orphaned = use.owner(dict(labelled.get(network.name, {})))
        owned = (ours and not orphaned) or (network.managed and not ours)
        out.append(NetworkView(**{**network.model_dump(), "instance": instance or
                                  network.instance},
                               orphaned=orphaned,
                               in_use=owned or network.builtin or network.containers > 0))
    return out


def _refuse(kind: str, name: str, users: list[str], containers_count: int) -> None:
    why = (f"instance(s) {', '.join(users)}" if users
           else f"{containers_count} container(s)" if containers_count else "a StackHub instance")
    raise Conflict(f"{kind} {name} is in use by {why}: remove or change that first "
                   "(nothing was removed)", details={"instances": users})


def remove_image(engine: InventoryEngine, records: Records, paths: Paths, ref: str) -> None:
    """Remove an image that neither a container nor an instance uses.

    Removing one tag of an image that keeps other tags only untags it: that is refused only
    when an instance's project names that very tag.
    """
    containers.check_ref(ref)
    use = usage(engine, records, paths)
    for image in images(engine, records, paths, use):
        bare = image.id.removeprefix("sha256:")
        by_id = ref in (image.id, image.short_id, bare)
        if by_id or normalise(ref) in (normalise(t) for t in image.tags):
            if not by_id and len(image.tags) > 1:
                named_by = sorted(use.image_refs.get(normalise(ref), set()))
                if named_by:
                    _refuse("image", ref, named_by, 0)
            elif image.in_use:
                _refuse("image", image.tags[0] if image.tags else image.short_id,
                        image.instances, image.containers)
            engine.remove_image(image.id if by_id else ref)
            return
    raise NotFound(f"no image {ref!r}")


def remove_volume(engine: InventoryEngine, records: Records, paths: Paths, name: str) -> None:
    """Remove a volume no container mounts and no instance owns (orphaned ones may go)."""
    containers.check_ref(name)
    for volume in volumes(engine, records, paths, sized=False):
        if volume.name == name:
            if volume.in_use:
                _refuse("volume", name, [volume.instance] if volume.instance else [],
                        volume.containers)
            engine.remove_volume(name)
            return
    raise NotFound(f"no volume {name!r}")


def remove_network(engine: InventoryEngine, records: Records, paths: Paths, ref: str) -> None:
    """Remove a network no container uses, not built in and not owned by an instance."""
    containers.check_ref(ref)
    for network in networks(engine, records, paths):
        if ref in (network.name, network.id, network.short_id):
            if network.builtin:
                raise Conflict(f"network {network.name} is one of the engine's own networks")
            if network.in_use:
                _refuse("network", network.name, [network.instance] if network.instance else [],
                        network.containers)
            engine.remove_network(network.id)
            return
    raise NotFound(f"no network {ref!r}")


def plan(engine: InventoryEngine, records: Records, paths: Paths,
         request: PruneRequest) -> list[PruneItem]:
    """What a prune with these options removes now: only unused objects."""
    use = usage(engine, records, paths)
    items: list[PruneItem] = []
    if request.images or request.all_images:
        for image in images(engine, records, paths, use):
            if not image.in_use and (image.dangling or request.all_images):
                items.append(PruneItem(kind="image", id=image.id,
                                       name=image.tags[0] if image.tags else image.short_id,
                                       size=image.size))
    if request.volumes:
        for volume in volumes(engine, records, paths, use):
            if not volume.in_use:
                items.append(PruneItem(kind="volume", id=volume.name, name=volume.name,
                                       size=volume.size or 0))
    if request.networks:
        for network in networks(engine, records, paths, use):
            if not network.in_use:
                items.append(PruneItem(kind="network", id=network.id, name=network.name))
    if request.only is not None:
        wanted = set(request.only)
        items = [i for i in items if i.id in wanted or i.name in wanted]
    return items


def prune(engine: InventoryEngine, records: Records, paths: Paths,
          request: PruneRequest) -> PrunePlan:
    """Preview (dry run) or prune: each object removed on its own, failures reported."""
    items = plan(engine, records, paths, request)
    if request.dry_run:
        return PrunePlan(dry_run=True, items=items, space=sum(i.size for i in items))
    done: list[PruneItem] = []
    removers: dict[str, Any] = {"image": lambda i: engine.remove_image(i.id),
                                "volume": lambda i: engine.remove_volume(i.id),
                                "network": lambda i: engine.remove_network(i.id)}
    for item in items:
        try:
            removers[item.kind](item)
            done.append(item.model_copy(update={"removed": True}))
        except StackHubError as err:
            done.append(item.model_copy(update={"error": err.message}))
    return PrunePlan(dry_run=False, items=done,
                     space=sum(i.size for i in done if i.removed))
