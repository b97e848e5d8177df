"""HTTP routes of the catalog domain: stores and apps."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from stackhub.api.deps import ServicesDep
from stackhub.catalog.models import AppDefinition

router = APIRouter(tags=["catalog"])


class StoreRead(BaseModel):
    """A configured store."""

    name: str
    kind: str
    source: str
    branch: str | None = None
    position: int


@router.get("/stores", response_model=list[StoreRead])
async def list_stores(services: ServicesDep) -> list[dict[str, Any]]:
    """List configured stores."""
    return services.catalog.stores()


@router.get("/catalog/apps", response_model=list[AppDefinition])
async def list_apps(services: ServicesDep, store: str | None = None) -> list[AppDefinition]:
    """List catalog apps."""
    return services.catalog.list(store)


@router.get("/catalog/apps/{store}/{app}", response_model=AppDefinition)
async def get_app(store: str, app: str, services: ServicesDep) -> AppDefinition:
    """Show one catalog app."""
    return services.catalog.get(f"{store}/{app}")
