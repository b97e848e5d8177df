"""``GET /api/system/version``: StackHub's version, its upgrade history, and the newest release."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from stackhub import version as versions
from stackhub.api.deps import ServicesDep
from stackhub.errors import StackHubError
from stackhub.state import versioning
from stackhub.state.migrations import MIGRATIONS

CACHE_SECONDS = 6 * 3600
router = APIRouter(prefix="/system", tags=["system"])
_cache: dict[str, tuple[float, versions.Release | None, str | None, str]] = {}


class VersionRead(BaseModel):
    """StackHub's own version and whether a newer release is available."""

    version: str = Field(description="The running StackHub's version.")
    schema_version: int = Field(description="The database schema this StackHub runs.")
    previous_version: str | None = Field(
        default=None, description="The version that ran on this database before the last "
                                  "upgrade (``schema N`` when that one recorded no version).")
    upgraded_at: str | None = Field(default=None, description="When the last upgrade ran.")
    source: str | None = Field(description="The configured release source "
                               "(STACKHUB_RELEASE_SOURCE); None: no check is made.")
    latest: versions.Release | None = Field(
        default=None, description="The newest release the source names.")
    update_available: bool = Field(description="The source names a newer release.")
    checked_at: str | None = Field(default=None, description="When the source was read.")
    error: str | None = Field(default=None, description="Why the source could not be read.")


def _latest(where: str, refresh: bool) -> tuple[versions.Release | None, str | None, str]:
    """Read the release source, at most once per CACHE_SECONDS unless `refresh`."""
    cached = _cache.get(where)
    if cached and not refresh and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1], cached[2], cached[3]
    at = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        found: tuple[versions.Release | None, str | None] = (versions.fetch_latest(where), None)
    except StackHubError as err:
        found = (None, err.message)
    _cache[where] = (time.monotonic(), *found, at)
    return *found, at


@router.get("/version", response_model=VersionRead, summary="StackHub's version and updates")
async def version(services: ServicesDep,
                  refresh: Annotated[bool, Query(description="Read the release source now "
                                                 "instead of the 6-hour cache.")] = False
                  ) -> VersionRead:
    """Return the running version, the last upgrade, and the newest release of the source."""
    running = versions.installed()
    recorded = await asyncio.to_thread(versioning.recorded, services.db)
    where = versions.source()
    latest, error, at = (None, None, None)
    if where is not None:
        latest, error, at = await asyncio.to_thread(_latest, where, refresh)
    return VersionRead(version=running, schema_version=len(MIGRATIONS),
                       previous_version=recorded.previous, upgraded_at=recorded.upgraded_at,
                       source=where, latest=latest, checked_at=at, error=error,
                       update_available=latest is not None and versions.is_newer(
                           latest.version, running))
