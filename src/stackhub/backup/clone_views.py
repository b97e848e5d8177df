"""HTTP route of clone (admin only): a copy of an instance with its data, under a new name."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from stackhub.api.deps import AuditDep, ServicesDep
from stackhub.apps.models import check_name
from stackhub.backup.models import CloneAccepted, CloneRequest
from stackhub.errors import StackHubError

router = APIRouter(tags=["backups"])
NamePath = Annotated[str, "instance name"]


@router.post("/instances/{name}/clone", response_model=CloneAccepted, status_code=202,
             summary="Clone an instance with its data")
async def clone(name: NamePath, request: CloneRequest, services: ServicesDep,
                audit: AuditDep) -> CloneAccepted:
    """Snapshot the instance and restore it as a new one: new ports, same secrets."""
    try:
        accepted = await services.cloner.clone(check_name(name), request)
    except StackHubError as err:
        audit("instance.clone", name, success=False, reason=err.code, new=request.name[:40])
        raise
    audit("instance.clone", name, success=True, new=accepted.instance,
          operation=accepted.operation.id)
    return accepted
