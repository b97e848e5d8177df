"""HTTP routes for admins: users and their grants, security settings, the audit log."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from stackhub.api.deps import AdminDep, ServicesDep, client_ip, require_admin
from stackhub.auth.models import (
    AuditEntry,
    GrantsUpdate,
    SecuritySettings,
    UserCreate,
    UserRead,
    UserUpdate,
)
from stackhub.errors import NotFound

router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])
UserName = Annotated[str, "user name"]


@router.get("/users", response_model=list[UserRead])
async def list_users(services: ServicesDep) -> list[UserRead]:
    """List every account."""
    return services.auth.accounts.list_users()


@router.post("/users", response_model=UserRead, status_code=201)
async def create_user(body: UserCreate, request: Request, services: ServicesDep,
                      admin: AdminDep) -> UserRead:
    """Create an account (role admin or member)."""
    return await asyncio.to_thread(services.auth.accounts.create_user, body, actor=admin,
                                   ip=client_ip(request))


@router.patch("/users/{name}", response_model=UserRead)
async def update_user(name: UserName, body: UserUpdate, request: Request,
                      services: ServicesDep, admin: AdminDep) -> UserRead:
    """Disable or enable an account, or change its role; a disabled user's sessions end."""
    return services.auth.accounts.update_user(name, body, actor=admin, ip=client_ip(request))


@router.delete("/users/{name}", status_code=204, response_class=Response)
async def delete_user(name: UserName, request: Request, services: ServicesDep,
                      admin: AdminDep) -> Response:
    """Delete an account with its sessions and tokens."""
    services.auth.accounts.delete_user(name, actor=admin, ip=client_ip(request))
    return Response(status_code=204)


@router.put("/users/{name}/instances", response_model=UserRead)
async def set_grants(name: UserName, body: GrantsUpdate, request: Request,
                     services: ServicesDep, admin: AdminDep) -> UserRead:
    """Set the instances a member may see and open (replaces the list)."""
    missing = [i for i in body.instances if services.records.find(i) is None]
    if missing:
        raise NotFound(f"no instance named {missing[0]!r}")
    return services.auth.accounts.set_grants(name, body.instances, actor=admin,
                                             ip=client_ip(request))


@router.get("/settings/security", response_model=SecuritySettings)
async def get_security(services: ServicesDep) -> SecuritySettings:
    """Show the security settings."""
    return services.auth.settings.get()


@router.put("/settings/security", response_model=SecuritySettings)
async def put_security(body: SecuritySettings, request: Request, services: ServicesDep,
                       admin: AdminDep) -> SecuritySettings:
    """Replace the security settings (2FA requirement, trusted proxies, allowed origins)."""
    saved = services.auth.settings.put(body)
    services.auth.audit.record(actor=admin.name, action="settings.security",
                               ip=client_ip(request), details=body.model_dump())
    return saved


@router.get("/audit", response_model=list[AuditEntry])
async def audit_log(services: ServicesDep,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[AuditEntry]:
    """Show recent security events, newest first."""
    return services.auth.audit.recent(limit)
