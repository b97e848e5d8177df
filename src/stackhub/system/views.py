"""HTTP routes of the system domain: host metrics and the admin's containers view."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from stackhub.api.deps import ServicesDep, require_admin
from stackhub.system import containers, doctor
from stackhub.system.metrics import sampler_of
from stackhub.system.models import (
    ContainerDetail,
    ContainerSummary,
    ImageSummary,
    MetricsRead,
    NetworkSummary,
    PruneResult,
    VolumeSummary,
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


@admin.get("/images", response_model=list[ImageSummary], summary="List images")
async def list_images(services: ServicesDep) -> list[ImageSummary]:
    """List images with their users."""
    return await asyncio.to_thread(containers.list_images, engine=services.engine)


@admin.post("/images/prune", response_model=PruneResult, summary="Prune unused images")
async def prune_images(services: ServicesDep,
                       all_unused: Annotated[bool, Query(alias="all", description="Every "
                                                         "unused image, not only untagged ones")]
                       = False) -> PruneResult:
    """Delete untagged images, or every image no container uses."""
    return await asyncio.to_thread(containers.prune_images, engine=services.engine,
                                   all_unused=all_unused)


@admin.delete("/images/{ref:path}", status_code=204, response_class=Response,
              summary="Remove an image")
async def remove_image(ref: str, services: ServicesDep) -> Response:
    """Remove an image no container uses."""
    await asyncio.to_thread(containers.remove_image, engine=services.engine, ref=ref)
    return Response(status_code=204)


@admin.get("/volumes", response_model=list[VolumeSummary], summary="List volumes")
async def list_volumes(services: ServicesDep) -> list[VolumeSummary]:
    """List volumes with their users."""
    return await asyncio.to_thread(containers.list_volumes, engine=services.engine)


@admin.delete("/volumes/{name}", status_code=204, response_class=Response,
              summary="Remove a volume")
async def remove_volume(name: str, services: ServicesDep) -> Response:
    """Remove an unused volume StackHub does not manage."""
    await asyncio.to_thread(containers.remove_volume, engine=services.engine, name=name)
    return Response(status_code=204)


@admin.get("/networks", response_model=list[NetworkSummary], summary="List networks")
async def list_networks(services: ServicesDep) -> list[NetworkSummary]:
    """List networks with their users."""
    return await asyncio.to_thread(containers.list_networks, engine=services.engine)


@admin.delete("/networks/{ref}", status_code=204, response_class=Response,
              summary="Remove a network")
async def remove_network(ref: str, services: ServicesDep) -> Response:
    """Remove a user network StackHub does not manage."""
    await asyncio.to_thread(containers.remove_network, engine=services.engine, ref=ref)
    return Response(status_code=204)


@admin.get("/doctor", response_model=doctor.DoctorReport, summary="Check the installation")
async def run_doctor(services: ServicesDep) -> doctor.DoctorReport:
    """Check the engine, Compose, Caddy, restic, the data root, the port, DNS and the server."""
    paths = services.paths
    return await asyncio.to_thread(doctor.run_doctor, paths.root,
                                   url=doctor.server_address(paths), in_server=True)


router.include_router(admin)
