"""HTTP route of the engine view's prune (admins): a preview, then the prune itself."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends

from stackhub.api.deps import AuditDep, ServicesDep, require_admin
from stackhub.system import engine_objects
from stackhub.system.engine_models import PrunePlan, PruneRequest

router = APIRouter(prefix="/system", tags=["system"], dependencies=[Depends(require_admin)])


@router.post("/prune", response_model=PrunePlan, summary="Prune unused engine objects")
async def prune(body: PruneRequest, services: ServicesDep, audit: AuditDep) -> PrunePlan:
    """With dry_run (the default), list what would go and the space returned; otherwise
    remove it. Nothing a container or a StackHub instance uses is ever in the list."""
    result = await asyncio.to_thread(engine_objects.prune, services.engine, services.records,
                                     services.paths, body)
    if not body.dry_run:
        audit("engine.prune", "", removed=sum(1 for i in result.items if i.removed),
              space=result.space)
    return result
