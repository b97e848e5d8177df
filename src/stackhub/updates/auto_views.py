"""HTTP routes of automatic updates and replaced images (admin only)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter

from stackhub.api.deps import AuditDep, ServicesDep
from stackhub.apps.models import Accepted, check_name
from stackhub.errors import StackHubError
from stackhub.updates.models import AutoUpdateRead, AutoUpdateRequest, ReplacedImageRead
from stackhub.updates.prune import KEEP

router = APIRouter(tags=["updates"])
NamePath = Annotated[str, "instance name"]


@router.get("/instances/{name}/auto-update", response_model=AutoUpdateRead,
            summary="Show an instance's automatic update setting")
async def get_auto_update(name: NamePath, services: ServicesDep) -> AutoUpdateRead:
    """Return whether updates apply automatically, when, which kind, and the last result."""
    return services.auto_updates.read(check_name(name))


@router.put("/instances/{name}/auto-update", response_model=AutoUpdateRead,
            summary="Turn an instance's automatic updates on or off")
async def set_auto_update(name: NamePath, request: AutoUpdateRequest, services: ServicesDep,
                          audit: AuditDep) -> AutoUpdateRead:
    """Set the window (`sun 04:00`, `daily 03:00-05:00`) and kind (digest or version)."""
    try:
        read = services.auto_updates.configure(check_name(name), request)
    except StackHubError as err:
        audit("instance.auto_update", name, success=False, reason=err.code)
        raise
    audit("instance.auto_update", name, success=True, enabled=read.enabled,
          window=read.window, kind=read.kind)
    return read


@router.post("/instances/{name}/auto-update/run", response_model=Accepted, status_code=202,
             summary="Run an instance's automatic update now")
async def run_auto_update(name: NamePath, services: ServicesDep, audit: AuditDep) -> Accepted:
    """Check and apply what the instance's setting allows now, whatever the window."""
    try:
        accepted, _task = await services.auto_updates.run_now(check_name(name))
    except StackHubError as err:
        audit("instance.auto_update_run", name, success=False, reason=err.code)
        raise
    audit("instance.auto_update_run", name, success=True, operation=accepted.operation.id)
    return accepted


@router.get("/updates/replaced-images", response_model=list[ReplacedImageRead],
            summary="List the images updates replaced, kept for rollbacks")
async def replaced_images(services: ServicesDep) -> list[ReplacedImageRead]:
    """Every replaced image not pruned yet, with the time it may be pruned after."""
    return [ReplacedImageRead(image_id=r.image_id, ref=r.ref, instance=r.instance,
                              replaced_at=r.replaced_at.isoformat(),
                              prune_after=(r.replaced_at + KEEP).isoformat())
            for r in services.pruner.pending()]


@router.post("/updates/prune", response_model=dict[str, str],
             summary="Prune expired replaced images now")
async def prune_images(services: ServicesDep, audit: AuditDep) -> dict[str, str]:
    """Remove the replaced images older than 7 days that no container uses (id -> outcome)."""
    done = await asyncio.to_thread(services.pruner.prune)
    audit("images.prune", "replaced", success=True, count=len(done))
    return done


