"""Build the FastAPI application: routers mounted in one place, auth global by default."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field
from starlette.routing import BaseRoute

from stackhub import __doc__ as product
from stackhub.api import errors, security, web, ws
from stackhub.api.deps import PUBLIC_ROUTES, ServicesDep, authorize
from stackhub.api.fastpath import FastReads
from stackhub.api.limits import BodyLimit
from stackhub.apps import docker_run_views, kept_views, settings_views
from stackhub.apps import views as apps_views
from stackhub.auth import admin_views as auth_admin_views
from stackhub.auth import views as auth_views
from stackhub.backup import clone_views
from stackhub.backup import views as backup_views
from stackhub.backup.scheduler import BackupScheduler
from stackhub.catalog import schedule as catalog_schedule
from stackhub.catalog import views as catalog_views
from stackhub.config import Paths
from stackhub.errors import StackHubError
from stackhub.notify import views as notify_views
from stackhub.proxy import views as proxy_views
from stackhub.services import Services, build
from stackhub.system import engine_views, history_views, version_views
from stackhub.system import views as system_views
from stackhub.tools import files_views, terminals_views
from stackhub.updates import auto_views
from stackhub.updates import views as updates_views
from stackhub.updates.prune import start_pruning, stop_pruning
from stackhub.updates.service import start_checks, stop_checks
from stackhub.version import installed

log = logging.getLogger("stackhub")
PUBLIC_PATHS = {path for _, path in PUBLIC_ROUTES}


class Health(BaseModel):
    """Liveness and engine reachability."""

    status: str
    engine: bool = Field(description="The Docker engine answered the last time StackHub "
                         "asked (false while it is unreachable, and before the first answer).")
    engine_error: str | None = Field(default=None, description="Why the engine is unreachable "
                                     "(set only while it is known to be down).")
    engine_since: str | None = Field(default=None, description="When the engine's current "
                                     "state (up or down) began, ISO 8601 UTC; None before the "
                                     "first contact.")
    version: str


public = APIRouter(tags=["system"])


@public.get("/api/health", response_model=Health)
async def health(services: ServicesDep) -> Health:
    """Say whether the server is up and the engine reachable (no authentication)."""
    state = services.status.engine_state()
    return Health(status="ok", engine=state.engine, engine_error=state.error,
                  engine_since=state.since, version=installed())


def create_app(paths: Paths, *, services: Services | None = None,
               public_host: str = "localhost") -> FastAPI:
    """Create the app for a data root; `services` may be injected by tests."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = services if services is not None else await asyncio.to_thread(
            build, paths, public_host=public_host)
        app.state.services = svc
        svc.bus.bind(asyncio.get_running_loop())
        try:
            report = await svc.flows.recover()
            if report["interrupted"] or report["orphans"]:
                log.warning("recovered after restart: %s", report)
        except StackHubError as err:
            log.warning("recovery incomplete: %s", err.message)
        try:  # what restores left to clean up when the server stopped (old data in volumes)
            swept = await svc.backups.flows.sweep()
            if swept:
                log.warning("finished the clean-up of restores %s", ", ".join(swept))
        except StackHubError as err:
            log.warning("the clean-up after earlier restores waits for the next start: %s",
                        err.message)
        svc.notify.start()  # the bell follows the bus before the engine's first state is known
        await svc.status.start()
        await svc.fence.start()  # only published ports reach app containers from outside
        store_sync = catalog_schedule.start(svc.catalog)
        await svc.proxy.start()  # the gateway, if enabled (docs/architecture.md, "Gateway")
        backup_rounds = BackupScheduler(svc.backups).start()  # scheduled backups and checks
        # after `stackhub restore-system`: each instance from its latest snapshot, one by one
        recovery = asyncio.create_task(svc.backups.recover_instances(), name="recovery")
        update_checks = start_checks(svc.updates)  # daily by default (docs: "updates")
        auto_rounds = svc.auto_updates.start()  # auto-update windows, each minute
        pruning = start_pruning(svc.pruner)  # images updates replaced, after 7 days
        notify_rounds = svc.notify_watch.start()  # conditions without events, each minute
        history = svc.metrics_history.start()  # every 5 s unless STACKHUB_METRICS_HISTORY=0
        try:
            yield
        finally:
            await svc.notify_watch.stop(notify_rounds)
            await svc.notify.stop()
            await svc.metrics_history.stop(history)
            await stop_pruning(pruning)
            await svc.auto_updates.stop(auto_rounds)
            await stop_checks(update_checks)
            await BackupScheduler.stop(backup_rounds)
            recovery.cancel()
            await asyncio.gather(recovery, return_exceptions=True)
            await svc.proxy.stop()
            await svc.fence.stop()
            await catalog_schedule.stop(store_sync)
            await svc.flows.close()  # a reconciliation still waiting for the engine
            await svc.status.stop()
            await svc.runner.shutdown()

    app = FastAPI(title="StackHub", description=product, version=installed(), lifespan=lifespan,
                  openapi_url=None, docs_url=None, redoc_url=None)
    app.add_middleware(FastReads, health=health)  # innermost: hot reads skip routing
    errors.install(app)
    security.install(app)
    app.add_middleware(BodyLimit)  # outermost: nothing reads an oversized body
    app.router.routes.extend(_route_table())  # the same for every app, built once
    web.mount_console(app)  # last: the console's SPA fallback never shadows /api
    return app


@functools.cache
def _route_table() -> tuple[BaseRoute, ...]:
    """Return every API route, solved once per process and shared by each app it builds.

    FastAPI solves each included route's dependencies and models per inclusion (per app, it
    was ~0.7 s of CPU in create_app and up to as much on the first requests; now ~0.45 s once
    per process, on first use or by `solve_routes`). Nothing in the table is per-app: handlers
    reach their app through the request (``request.app.state``); the template's
    ``dependency_overrides`` (unused) stay empty.
    """
    template = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)  # default router
    first = len(template.router.routes)
    template.include_router(public)
    template.include_router(auth_views.public_router, responses=errors.documented(413, 422, 429))
    template.include_router(ws.router)
    template.include_router(terminals_views.sockets)
    template.include_router(proxy_views.public)
    api = APIRouter()  # prefix, policy and errors come with its inclusion (below)
    api.include_router(auth_views.router)
    api.include_router(auth_views.tokens_router)
    api.include_router(auth_admin_views.router)
    api.include_router(apps_views.router)
    api.include_router(docker_run_views.router)
    api.include_router(kept_views.router)
    api.include_router(catalog_views.router)
    api.include_router(system_views.router)
    api.include_router(version_views.router)
    api.include_router(proxy_views.router)
    api.include_router(backup_views.router)
    api.include_router(settings_views.router)
    api.include_router(updates_views.router)
    api.include_router(auto_views.router)
    api.include_router(clone_views.router)
    api.include_router(terminals_views.router)
    api.include_router(files_views.router)
    api.include_router(engine_views.router)
    api.include_router(notify_views.router)
    api.include_router(history_views.router)

    @api.get("/openapi.json", include_in_schema=False)
    async def openapi_document(request: Request) -> JSONResponse:
        """Serve the OpenAPI schema to signed-in callers (docs/openapi.json is the copy)."""
        return JSONResponse(request.app.openapi())

    # with a prefix FastAPI solves the routes once (here, not also for an empty-path check)
    template.include_router(api, prefix="/api", dependencies=[Depends(authorize)],
                            responses=errors.documented(401, 403, 413, 422))
    return tuple(template.router.routes[first:])


def solve_routes() -> None:
    """Solve every route's dependencies and models now, not on some request's first match.

    FastAPI does it per included router on first use, under that router's lock, so this may
    run in a thread while requests are served: `stackhub serve` runs it once it answers
    (issue 18, part 5: ~0.45 s of CPU no longer before the first answer).
    """
    for _ in iter_route_contexts(_route_table()):
        pass
