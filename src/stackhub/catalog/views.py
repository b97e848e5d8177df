"""HTTP routes of the catalog domain: stores, their syncs, and catalog apps with assets."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Response, status

from stackhub.api.deps import ServicesDep
from stackhub.catalog.models import (
    APP_ID,
    CatalogAppRead,
    CatalogAppSummary,
    CategoryRead,
    StoreCreate,
    StoreRead,
    SyncResult,
)
from stackhub.errors import StoreError

router = APIRouter(tags=["catalog"])
Name = Annotated[str, Path(pattern=APP_ID.pattern, description="A store or app name.")]
Locale = Annotated[str, Query(max_length=16, pattern=r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})?$",
                              description="Locale for texts, e.g. en or zh-CN.")]
Force = Annotated[bool, Query(description="Re-read and re-index even if unchanged.")]
MEDIA = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
         ".webp": "image/webp", ".svg": "image/svg+xml", ".ico": "image/x-icon",
         ".avif": "image/avif"}


@router.get("/stores", response_model=list[StoreRead], summary="List stores")
async def list_stores(services: ServicesDep) -> list[StoreRead]:
    """List configured stores in precedence order, with the state of their last sync."""
    return services.catalog.stores()


@router.post("/stores", response_model=StoreRead, status_code=status.HTTP_201_CREATED,
             summary="Add a store")
async def add_store(request: StoreCreate, services: ServicesDep) -> StoreRead:
    """Add a store and (by default) sync it; a failed first sync is shown in `last_error`."""
    catalog = services.catalog
    store = await asyncio.to_thread(catalog.add, request.name, request.source, request.branch,
                                    request.kind, local=request.local,
                                    max_bytes=request.max_size_mb and
                                    request.max_size_mb * 1024 * 1024)
    if request.sync:
        # a failed first sync is recorded on the store: the caller sees last_error
        with contextlib.suppress(StoreError):
            await asyncio.to_thread(catalog.sync_store, store.name)
        store = catalog.store(store.name)
    return store


@router.delete("/stores/{name}", status_code=status.HTTP_204_NO_CONTENT,
               summary="Remove a store")
async def remove_store(name: Name, services: ServicesDep) -> Response:
    """Remove a store and its catalog entries; installed instances keep their definition."""
    await asyncio.to_thread(services.catalog.remove, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/stores/sync", response_model=list[SyncResult], summary="Sync every store")
async def sync_all(services: ServicesDep, force: Force = False) -> list[SyncResult]:
    """Sync every store now; failures are reported per store."""
    return await asyncio.to_thread(services.catalog.sync, None, force=force)


@router.post("/stores/{name}/sync", response_model=SyncResult, summary="Sync a store")
async def sync_one(name: Name, services: ServicesDep, force: Force = False) -> SyncResult:
    """Sync one store now; on failure the previous catalog stays and the error is returned."""
    return await asyncio.to_thread(services.catalog.sync_store, name, force=force)


@router.get("/catalog/apps", response_model=list[CatalogAppSummary], summary="List apps")
async def list_apps(services: ServicesDep, store: str | None = None,
                    category: str | None = None, installable: bool | None = None,
                    q: Annotated[str | None, Query(max_length=200)] = None,
                    locale: Locale = "en", featured: bool | None = None,
                    sort: Annotated[Literal["store", "updated"], Query(
                        description="store: store precedence (the default); updated: apps "
                        "with a known change date, newest first.")] = "store",
                    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
                    ) -> list[CatalogAppSummary]:
    """List or search catalog apps, filtered by store, category, installability, featured."""
    return services.catalog.list(store=store, category=category, installable=installable,
                                 query=q, locale=locale, featured=featured,
                                 recent=sort == "updated", limit=limit)


@router.get("/catalog/categories", response_model=list[CategoryRead], summary="List categories")
async def list_categories(services: ServicesDep, store: str | None = None) -> list[CategoryRead]:
    """List categories with the number of apps in each."""
    return services.catalog.categories(store)


@router.get("/catalog/apps/{store}/{app}", response_model=CatalogAppRead, summary="Show an app")
async def get_app(store: Name, app: Name, services: ServicesDep,
                  locale: Locale = "en") -> CatalogAppRead:
    """Show one catalog app: localized texts, all languages, parameters and compose."""
    return services.catalog.details(f"{store}/{app}", locale)


def _file_response(data: bytes, suffix: str, if_none_match: str | None) -> Response:
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=86400",
               "X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                          "sandbox"}
    if if_none_match and etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(content=data, media_type=MEDIA.get(suffix, "application/octet-stream"),
                    headers=headers)


IMAGE: dict[int | str, dict[str, Any]] = {200: {"content": {"image/*": {}}},
                                          304: {"description": "Not modified"}}


@router.get("/catalog/apps/{store}/{app}/icon", response_class=Response, responses=IMAGE,
            summary="Get an app's icon")
async def get_icon(store: Name, app: Name, services: ServicesDep,
                   if_none_match: Annotated[str | None, Header()] = None) -> Response:
    """Serve the app's icon from its synced store, with ETag and Cache-Control."""
    data, suffix = await asyncio.to_thread(services.catalog.asset, store, app)
    return _file_response(data, suffix, if_none_match)


@router.get("/catalog/apps/{store}/{app}/screenshots/{n}", response_class=Response,
            responses=IMAGE, summary="Get an app's screenshot")
async def get_screenshot(store: Name, app: Name, n: Annotated[int, Path(ge=0, le=99)],
                         services: ServicesDep,
                         if_none_match: Annotated[str | None, Header()] = None) -> Response:
    """Serve the app's n-th screenshot (from 0) from its synced store."""
    data, suffix = await asyncio.to_thread(services.catalog.asset, store, app, n)
    return _file_response(data, suffix, if_none_match)
