"""HTTP routes of settings after install: read, preview, apply, revisions (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter

from stackhub.api.deps import AuditDep, ServicesDep
from stackhub.apps.models import Accepted, check_name
from stackhub.apps.revisions import RevisionRead
from stackhub.apps.settings import SettingsChange, SettingsPreview, SettingsRead
from stackhub.apps.views import audit_outcome
from stackhub.errors import StackHubError

router = APIRouter(tags=["settings"])
NamePath = Annotated[str, "instance name"]


@router.get("/instances/{name}/settings", response_model=SettingsRead,
            summary="Show an instance's settings")
async def get_settings(name: NamePath, services: ServicesDep) -> SettingsRead:
    """Return the parameters with their values (secrets hidden) and which are read-only."""
    return services.settings.read(check_name(name))


@router.post("/instances/{name}/settings/preview", response_model=SettingsPreview,
             summary="Preview a settings change")
async def preview_settings(name: NamePath, change: SettingsChange,
                           services: ServicesDep) -> SettingsPreview:
    """Render the change: changed values, compose diff, services to recreate; nothing stops."""
    return await services.settings.preview(check_name(name), change)


@router.put("/instances/{name}/settings", response_model=Accepted, status_code=202,
            summary="Apply a settings change")
async def apply_settings(name: NamePath, change: SettingsChange, services: ServicesDep,
                         audit: AuditDep) -> Accepted:
    """Check the change, then recreate only the services whose configuration changed."""
    try:
        accepted = await services.settings.apply(check_name(name), change)
    except StackHubError as err:
        audit("instance.settings", name, success=False, reason=err.code)
        raise
    audit_outcome(services, audit, "instance.settings", name, accepted.operation.id,
                  keys=sorted(change.values), revision=change.revision)
    return accepted


@router.get("/instances/{name}/revisions", response_model=list[RevisionRead],
            summary="List an instance's settings revisions")
async def list_revisions(name: NamePath, services: ServicesDep) -> list[RevisionRead]:
    """Return every kept revision, newest first."""
    return services.settings.history(check_name(name))
