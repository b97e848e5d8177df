"""HTTP routes of updates (admin only): check, update, rollback."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter

from stackhub.api.deps import AuditDep, Auditor, ServicesDep
from stackhub.apps.models import Accepted, check_name
from stackhub.errors import StackHubError
from stackhub.operations.models import OperationState
from stackhub.services import Services
from stackhub.updates.models import UpdateRead, UpdateRequest

router = APIRouter(tags=["updates"])
NamePath = Annotated[str, "instance name"]
_waiting: set[asyncio.Task[None]] = set()


def audit_outcome(services: Services, audit: Auditor, action: str, target: str, op_id: str,
                  **details: Any) -> None:
    """Record `action` once its operation has ended, with its outcome (and error)."""

    async def wait() -> None:
        while True:
            op = services.apps.operation(op_id)
            if op.state != OperationState.RUNNING:
                break
            await asyncio.sleep(0.5)
        with contextlib.suppress(Exception):  # shutting down: the database may be gone
            extra = {"error": (op.error or "")[:300]} if op.error else {}
            audit(action, target, success=op.state == OperationState.SUCCEEDED,
                  operation=op_id, outcome=op.state.value, **details, **extra)

    task = asyncio.get_running_loop().create_task(wait())
    _waiting.add(task)
    task.add_done_callback(_waiting.discard)


@router.post("/updates/check", response_model=list[UpdateRead], summary="Check for updates")
async def check_all(services: ServicesDep) -> list[UpdateRead]:
    """Compare every instance with its store and its images' registry digests."""
    return await services.updates.check()


@router.get("/updates", response_model=list[UpdateRead], summary="List known updates")
async def list_updates(services: ServicesDep) -> list[UpdateRead]:
    """Every instance with an update the last check found, with release notes (no registry
    is asked)."""
    return services.updates.available()


@router.get("/instances/{name}/update", response_model=UpdateRead,
            summary="Show an instance's known update")
async def get_update(name: NamePath, services: ServicesDep) -> UpdateRead:
    """Return what the last check found (no registry is asked)."""
    return services.updates.read(check_name(name))


@router.post("/instances/{name}/update", response_model=Accepted, status_code=202,
             summary="Update an instance safely")
async def update(name: NamePath, services: ServicesDep, audit: AuditDep,
                 request: UpdateRequest | None = None) -> Accepted:
    """Pull, stop, snapshot, apply, start, watch; any failure rolls back automatically."""
    try:
        accepted = await services.updates.update(check_name(name), request or UpdateRequest())
    except StackHubError as err:
        audit("instance.update", name, success=False, reason=err.code)
        raise
    audit_outcome(services, audit, "instance.update", name, accepted.operation.id,
                  version=accepted.version)
    return accepted


@router.post("/instances/{name}/rollback", response_model=Accepted, status_code=202,
             summary="Roll back an instance's last update")
async def rollback(name: NamePath, services: ServicesDep, audit: AuditDep) -> Accepted:
    """Restore the definition and data of the snapshot taken before the last update."""
    try:
        accepted = await services.updates.rollback(check_name(name))
    except StackHubError as err:
        audit("instance.rollback", name, success=False, reason=err.code)
        raise
    audit_outcome(services, audit, "instance.rollback", name, accepted.operation.id)
    return accepted
