"""HTTP routes of the system domain: host metrics and the admin's containers view."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from stackhub.api.deps import ServicesDep, require_admin
from stackhub.system import containers, doctor, engine_objects
from stackhub.system.engine_models import ImageView, NetworkView, PruneRequest, VolumeView
from stackhub.system.metrics import sampler_of
from stackhub.system.models import (
    ContainerDetail,
    ContainerSummary,
    MetricsRead,
    PruneResult,
)

router = APIRouter(prefix="/system", tags=["system"])
admin = APIRouter(dependencies=[Depends(require_admin)])


@router.get("/metrics", response_model=MetricsRead, summary="Sample the host's resources")
async def metrics(request: Request) -> MetricsRead:
    """Return CPU, memory, disk and network use now (live updates: websocket topic metrics)."""
    return await sampler_of(request.app).read()


@admin.get("/containers", response_model=list[ContainerSummary], summary="List containers")
async def list_containers(services: ServicesDep) -> list[ContainerSummary]:
    """List every container of the engine; StackHub's are marked managed."""
    return await asyncio.to_thread(containers.list_containers, engine=services.engine)


@admin.get("/containers/{ref}", response_model=ContainerDetail, summary="Inspect a container")
async def inspect_container(ref: str, services: ServicesDep) -> ContainerDetail:
    """Describe one container; secret-looking environment values are redacted."""
    secrets = services.records.secret_values()
    return await asyncio.to_thread(containers.inspect_container, engine=services.engine, ref=ref,
                                   secrets=secrets)


@admin.post("/containers/{ref}/{action}", response_model=ContainerDetail,
            summary="Start, stop or restart a container")
async def container_action(ref: str, action: Literal["start", "stop", "restart"],
                           services: ServicesDep) -> ContainerDetail:
    """Act on one container and return its new state."""
    return await asyncio.to_thread(containers.container_action, engine=services.engine, ref=ref,
                                   action=action)


@admin.delete("/containers/{ref}", status_code=204, response_class=Response,
              summary="Remove a container")
async def remove_container(ref: str, services: ServicesDep,
                           force: Annotated[bool, Query(description="Stop it first if running")]
                           = False) -> Response:
    """Remove a container StackHub does not manage (instances are removed as a whole)."""
    await asyncio.to_thread(containers.remove_container, engine=services.engine, ref=ref,
                            force=force)
    return Response(status_code=204)


@admin.get("/images", response_model=list[ImageView], summary="List images")
async def list_images(services: ServicesDep) -> list[ImageView]:
    """List images with their users (containers, and instances by project file)."""
    return await asyncio.to_thread(engine_objects.images, services.engine, services.records,
                                   services.paths)


@admin.post("/images/prune", response_model=PruneResult, summary="Prune unused images")
async def prune_images(services: ServicesDep,
                       all_unused: Annotated[bool, Query(alias="all", description="Every "
                                                         "unused image, not only untagged ones")]
                       = False) -> PruneResult:
    """Delete untagged images, or every image no container or instance uses."""
    done = await asyncio.to_thread(engine_objects.prune, services.engine, services.records,
                                   services.paths, PruneRequest(
                                       all_images=all_unused, networks=False, dry_run=False))
    return PruneResult(deleted=[i.id for i in done.items if i.removed], space_reclaimed=done.space)


@admin.delete("/images/{ref:path}", status_code=204, response_class=Response,
              summary="Remove an image")
async def remove_image(ref: str, services: ServicesDep) -> Response:
    """Remove an image no container and no instance uses."""
    await asyncio.to_thread(engine_objects.remove_image, services.engine, services.records,
                            services.paths, ref)
    return Response(status_code=204)


@admin.get("/volumes", response_model=list[VolumeView], summary="List volumes")
async def list_volumes(services: ServicesDep) -> list[VolumeView]:
    """List volumes with their size, users and owner instance (or orphaned)."""
    return await asyncio.to_thread(engine_objects.volumes, services.engine, services.records,
                                   services.paths)


@admin.delete("/volumes/{name}", status_code=204, response_class=Response,
              summary="Remove a volume")
async def remove_volume(name: str, services: ServicesDep) -> Response:
    """Remove a volume no container mounts and no instance owns."""
    await asyncio.to_thread(engine_objects.remove_volume, services.engine, services.records,
                            services.paths, name)
    return Response(status_code=204)


@admin.get("/networks", response_model=list[NetworkView], summary="List networks")
async def list_networks(services: ServicesDep) -> list[NetworkView]:
    """List networks with their users and owner instance (or orphaned)."""
    return await asyncio.to_thread(engine_objects.networks, services.engine, services.records,
                                   services.paths)


@admin.delete("/networks/{ref}", status_code=204, response_class=Response,
              summary="Remove a network")
async def remove_network(ref: str, services: ServicesDep) -> Response:
    """Remove a user network no container uses and no instance owns."""
    await asyncio.to_thread(engine_objects.remove_network, services.engine, services.records,
                            services.paths, ref)
    return Response(status_code=204)


@admin.get("/doctor", response_model=doctor.DoctorReport, summary="Check the installation")
async def run_doctor(services: ServicesDep) -> doctor.DoctorReport:
    """Check the engine, Compose, Caddy, restic, the data root, the port, DNS and the server."""
    paths = services.paths
    return await asyncio.to_thread(doctor.run_doctor, paths.root,
                                   url=doctor.server_address(paths), in_server=True)


router.include_router(admin)
