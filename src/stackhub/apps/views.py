"""HTTP routes of the apps domain: plans, instances, operations, logs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from stackhub.api.cache import conditional
from stackhub.api.deps import AuditDep, Auditor, PrincipalDep, ServicesDep
from stackhub.api.streams import credential_check, guarded
from stackhub.apps.follow import follow_operation
from stackhub.apps.models import (
    Accepted,
    InstallRequest,
    InstanceRead,
    OperationPage,
    OperationRead,
    OperationState,
    PlanRead,
    PlanRequest,
    check_name,
)
from stackhub.apps.snapshot import Snapshot
from stackhub.errors import NotFound, RiskNotAccepted, StackHubError
from stackhub.operations.journal import OperationFilter
from stackhub.services import Services

router = APIRouter(tags=["apps"])
NamePath = Annotated[str, "instance name"]
OUTCOME_POLL = 0.5  # s: how often an audited operation is looked at until it ends
_outcomes: set[asyncio.Task[None]] = set()  # audits waiting for their operation to end


def _short(text: str | None) -> str:
    """The first line of an error, short enough for the audit log."""
    return (text or "").strip().splitlines()[0][:300] if (text or "").strip() else ""


def audit_outcome(services: Services, audit: Auditor, action: str, target: str, op_id: str,
                  **details: Any) -> None:
    """Record `action` once its operation has ended, with the outcome it really had."""

    async def wait() -> None:
        state = OperationState.INTERRUPTED
        error: str | None = None
        try:
            while True:
                op = services.apps.operation(op_id)
                if op.state != OperationState.RUNNING:
                    state, error = op.state, op.error
                    break
                await asyncio.sleep(OUTCOME_POLL)
        except NotFound:
            state = OperationState.FAILED
        finally:
            extra = {"error": _short(error)} if error else {}
            with contextlib.suppress(Exception):  # shutting down: the database may be gone
                audit(action, target, success=state == OperationState.SUCCEEDED,
                      operation=op_id, outcome=state.value, **details, **extra)

    task = asyncio.get_running_loop().create_task(wait())
    _outcomes.add(task)
    task.add_done_callback(_outcomes.discard)


@router.post("/plans", response_model=PlanRead, summary="Render an install plan")
async def create_plan(request: PlanRequest, services: ServicesDep) -> PlanRead:
    """Resolve parameters, allocate ports, render and analyse, without changing the engine."""
    return await services.apps.plan(request)


@router.post("/instances", response_model=Accepted, status_code=202,
             summary="Install an app as a new instance")
async def install(request: InstallRequest, services: ServicesDep, audit: AuditDep) -> Accepted:
    """Plan and start installing; follow progress on the websocket or the operation."""
    try:
        accepted = await services.apps.install(request)
    except RiskNotAccepted as err:
        audit("instance.install", request.name or "", success=False,
              reason="risks not accepted", digest=err.details.get("digest"))
        raise
    except StackHubError as err:
        audit("instance.install", request.name or "", success=False, reason=err.code,
              error=_short(err.message))
        raise
    if request.accept_risks:  # only admins reach this route (deps.MEMBER_ROUTES)
        audit("risk.consent", accepted.instance, digest=request.accept_risks)
    audit_outcome(services, audit, "instance.install", accepted.instance, accepted.operation.id)
    return accepted


def _snapshot(request: Request, services: Services) -> Snapshot:
    """Return this server's encoded instance views (apps/snapshot.py), made on first use."""
    snapshot: Snapshot | None = getattr(request.app.state, "instance_snapshot", None)
    if snapshot is None or snapshot.apps is not services.apps:
        snapshot = Snapshot(services.apps, services.db, services.bus)
        request.app.state.instance_snapshot = snapshot
    return snapshot


@router.get("/instances", response_model=list[InstanceRead], summary="List instances")
async def list_instances(request: Request, services: ServicesDep,
                         principal: PrincipalDep) -> Response:
    """Return every instance with its status (members: only those granted to them)."""
    # ready bytes from the snapshot, with a strong ETag; If-None-Match naming it gets 304
    granted = services.auth.accounts.granted(principal)
    body, etag = _snapshot(request, services).listing(
        None if granted is None else set(granted))
    return conditional(request, body, etag)


@router.get("/instances/{name}", response_model=InstanceRead, summary="Show an instance")
async def get_instance(name: NamePath, request: Request, services: ServicesDep,
                       principal: PrincipalDep) -> Response:
    """Return one instance."""
    # with an ETag, as the list; 304 when If-None-Match names it
    name = check_name(name)
    found = _snapshot(request, services).item(name) \
        if services.auth.accounts.may_see(principal, name) else None
    if found is None:
        raise NotFound(f"no instance named {name!r}")
    return conditional(request, *found)


async def _lifecycle(name: str, action: Literal["start", "stop", "restart"],
                     services: Services, audit: Auditor) -> InstanceRead:
    """Run a lifecycle action and audit it with its outcome."""
    try:
        result = await services.apps.lifecycle(check_name(name), action)
    except StackHubError as err:
        audit(f"instance.{action}", name, success=False, reason=err.code,
              error=_short(err.message))
        raise
    audit(f"instance.{action}", name)
    return result


@router.post("/instances/{name}/start", response_model=InstanceRead)
async def start(name: NamePath, services: ServicesDep, audit: AuditDep) -> InstanceRead:
    """Start an instance's containers."""
    return await _lifecycle(name, "start", services, audit)


@router.post("/instances/{name}/stop", response_model=InstanceRead)
async def stop(name: NamePath, services: ServicesDep, audit: AuditDep) -> InstanceRead:
    """Stop an instance's containers."""
    return await _lifecycle(name, "stop", services, audit)


@router.post("/instances/{name}/restart", response_model=InstanceRead)
async def restart(name: NamePath, services: ServicesDep, audit: AuditDep) -> InstanceRead:
    """Restart an instance's containers."""
    return await _lifecycle(name, "restart", services, audit)


@router.post("/instances/{name}/retry", response_model=Accepted, status_code=202)
async def retry(name: NamePath, services: ServicesDep, audit: AuditDep) -> Accepted:
    """Run a failed or interrupted install again."""
    try:
        accepted = await services.apps.retry(check_name(name))
    except StackHubError as err:
        audit("instance.retry", name, success=False, reason=err.code, error=_short(err.message))
        raise
    audit_outcome(services, audit, "instance.retry", name, accepted.operation.id)
    return accepted


@router.delete("/instances/{name}", response_model=Accepted, status_code=202)
async def remove(name: NamePath, services: ServicesDep,
                 audit: AuditDep,
                 purge: Annotated[bool, Query(description="Also delete the instance's data")]
                 = False) -> Accepted:
    """Take an instance down; its data is kept unless purge is set."""
    try:
        accepted = await services.apps.remove(check_name(name), purge=purge)
    except StackHubError as err:
        audit("instance.remove", name, success=False, purge=purge, reason=err.code,
              error=_short(err.message))
        raise
    services.auth.accounts.forget_instance(name)  # a later instance of that name starts ungranted
    audit_outcome(services, audit, "instance.remove", name, accepted.operation.id, purge=purge)
    return accepted


@router.get("/instances/{name}/logs", response_class=StreamingResponse,
            responses={200: {"content": {"text/plain": {}}}})
async def logs(name: NamePath, services: ServicesDep, request: Request,
               tail: Annotated[int | None, Query(ge=0, le=100_000)] = 200,
               follow: bool = False) -> StreamingResponse:
    """Stream the instance's logs as text lines (ended if the caller's access ends)."""
    name = check_name(name)
    services.apps.get(name)
    stream: AsyncIterator[str] = services.apps.logs(name, tail=tail, follow=follow)
    return StreamingResponse(guarded(stream, credential_check(request, services)),
                             media_type="text/plain; charset=utf-8")


@router.get("/operations", response_model=OperationPage, summary="List operations")
async def list_operations(
        services: ServicesDep,
        instance: Annotated[str | None, Query(max_length=40, description="Only operations on "
                                              "this instance (as subject or target)")] = None,
        kind: Annotated[str | None, Query(max_length=40, pattern=r"^[a-z][a-z0-9-]*$",
                                          description="install, remove, start, ...")] = None,
        state: OperationState | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> OperationPage:
    """Return one page of the operations journal, newest first, with each one's steps."""
    where = OperationFilter(instance=instance, kind=kind, state=state)
    return services.apps.operations(where, limit=limit, offset=offset)


@router.get("/operations/{op_id}", response_model=OperationRead)
async def get_operation(op_id: str, services: ServicesDep) -> OperationRead:
    """Return one operation."""
    return services.apps.operation(op_id)


@router.get("/operations/{op_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}}}},
            summary="Follow an operation as JSON lines")
async def operation_events(op_id: str, services: ServicesDep,
                           request: Request) -> StreamingResponse:
    """Stream `{"kind", "data"}` lines: the state now, live events, then `result`.

    `result` carries `operation` (the final record) and `instance` (the instance's view after
    a successful operation, None otherwise or once removed). The stream ends early, without
    `result`, if the caller's token, session or role stops allowing it.
    """
    stream = follow_operation(services.bus, services.apps.operation, services.apps.find,
                              services.runner.pulls, op_id)
    return StreamingResponse(guarded(stream, credential_check(request, services)),
                             media_type="application/x-ndjson",
                             headers={"Cache-Control": "no-store"})
