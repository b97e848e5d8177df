"""Routes of the kept-data list: data of removed instances, and purging it (admins only)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from stackhub.api.deps import AuditDep, ServicesDep
from stackhub.apps.models import KeptDataRead, check_name

router = APIRouter(tags=["apps"])


@router.get("/kept-data", response_model=list[KeptDataRead], summary="List kept data")
async def list_kept(services: ServicesDep) -> list[KeptDataRead]:
    """List the data removed instances left behind (folder size, volumes, app, dates)."""
    return await asyncio.to_thread(services.kept.list)


@router.delete("/kept-data/{name}", response_model=KeptDataRead, summary="Purge kept data")
async def purge_kept(name: str, services: ServicesDep, audit: AuditDep) -> KeptDataRead:
    """Delete a removed instance's data folder and named volumes for good."""
    purged = await asyncio.to_thread(services.kept.purge, check_name(name))
    audit("instance.purge_data", name, size=purged.size, volumes=purged.volumes)
    return purged
