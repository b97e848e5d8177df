"""A fast path for the hot read routes: answered before FastAPI's routing and dependencies.

Under 200 busy connections each turn of the event loop runs one callback per ready request;
through FastAPI (matching ~200 routes, solving the dependencies, validating the model) a
signed-in read cost ~1.5 ms of CPU, so a turn took ~0.3 s and anything needing many turns (an
install's plan: thread hand-offs, a child's pipes) waited minutes (issue 18, part 3). Here the
same answers come from ready bytes:
- `GET /api/health`: the encoded health, rebuilt when the engine's state changes;
- `GET /api/instances` and `GET /api/instances/{name}`: apps/snapshot.py's bytes and ETags;
- `GET /api/catalog/apps?...` and `GET /api/operations?...`: the body FastAPI produced for the
  same path and query string, kept while the database is unchanged (the catalog index and the
  operations journal live only there; 256 queries, 4 MB at most, both routes together).
Only the plain success answers (200, or 304 on `If-None-Match`) are given here, after the same
authentication and role policy as deps.py; anything else (no or bad credentials, a member
outside MEMBER_ROUTES, an unknown instance, a query FastAPI refuses, another method) passes
through to the application unchanged, so errors are FastAPI's own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stackhub.api.cache import CACHE_CONTROL
from stackhub.api.cache import matches as etag_matches
from stackhub.api.deps import (
    ENROLMENT_ROUTES,
    MEMBER_ROUTES,
    PUBLIC_ROUTES,
    Route,
    authenticate_request,
)
from stackhub.auth.models import Principal
from stackhub.errors import StackHubError

INSTANCES = "/api/instances"
CATALOG = "/api/catalog/apps"
OPERATIONS = "/api/operations"
KEPT_BY_DATABASE = frozenset({CATALOG, OPERATIONS})
"""Admin reads whose answers depend only on SQLite and the query string (not on the caller)."""
HEALTH = "/api/health"
CACHED_QUERIES = 256  # distinct query strings kept per database state
CACHED_BYTES = 4 * 1024 * 1024  # and their bodies at most this much in all (memory: part 4)


def _etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


class FastReads:
    """Answer the hot GETs from ready bytes; pass everything else to the application."""

    def __init__(self, app: ASGIApp, health: Callable[[Any], Awaitable[BaseModel]]) -> None:
        """Wrap the application; ``health`` is the health route itself (same fields, version)."""
        self.app = app
        self._health_route = health
        self._health: tuple[object, bytes] | None = None
        self._kept_key: object = None
        self._kept: dict[bytes, tuple[bytes, str]] = {}
        self._kept_bytes = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a hot read, or hand the request on."""
        if scope["type"] != "http" or scope.get("method") != "GET":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        services = getattr(getattr(scope.get("app"), "state", None), "services", None)
        if services is None:
            await self.app(scope, receive, send)
            return
        try:
            if path == HEALTH:
                await self._send(send, scope, await self._health_body(services), None)
                return
            if path == INSTANCES or path.startswith(INSTANCES + "/"):
                served = await self._instances(scope, send, services, path)
            else:
                served = path in KEPT_BY_DATABASE and await self._kept_read(
                    scope, receive, send, services, path)
            if served:
                return
        except StackHubError:
            pass  # the full path gives the proper error answer
        await self.app(scope, receive, send)

    # routes ---------------------------------------------------------------------------------

    async def _health_body(self, services: Any) -> bytes:
        status = services.status
        key = (getattr(status, "engine_ok", None), getattr(status, "engine_error", None),
               getattr(status, "engine_since", None))
        cached = self._health
        if cached is None or cached[0] != key or key == (None, None, None):
            answer = await self._health_route(services)
            cached = self._health = (key, answer.model_dump_json().encode())
        return cached[1]

    async def _instances(self, scope: Scope, send: Send, services: Any, path: str) -> bool:
        from stackhub.apps.models import check_name
        from stackhub.apps.views import _snapshot

        name = path[len(INSTANCES) + 1:] if path != INSTANCES else None
        if name is not None and (not name or "/" in name):
            return False
        template = INSTANCES if name is None else INSTANCES + "/{name}"
        request = Request(scope)
        principal = _caller(request, services, ("GET", template))
        if principal is None:
            return False
        snapshot = _snapshot(request, services)
        if name is None:
            granted = services.auth.accounts.granted(principal)
            body, etag = snapshot.listing(None if granted is None else set(granted))
        else:
            name = check_name(name)
            found = snapshot.item(name) if services.auth.accounts.may_see(principal, name) \
                else None
            if found is None:
                return False
            body, etag = found
        await self._send(send, scope, body, etag)
        return True

    async def _kept_read(self, scope: Scope, receive: Receive, send: Send, services: Any,
                         path: str) -> bool:
        principal = _caller(Request(scope), services, ("GET", path))
        if principal is None:
            return False
        key = services.db.version()
        if key != self._kept_key:
            self._kept_key, self._kept, self._kept_bytes = key, {}, 0
        query = path.encode() + b"?" + scope.get("query_string", b"")
        found = self._kept.get(query)
        if found is None:
            found = await _capture(self.app, scope, receive, send)
            if found is None:
                return True  # FastAPI answered (an error, or an uncacheable body)
            size = len(found[0])
            if services.db.version() == key and len(self._kept) < CACHED_QUERIES \
                    and self._kept_bytes + size <= CACHED_BYTES:
                self._kept[query] = found
                self._kept_bytes += size
        await self._send(send, scope, *found)
        return True

    # answers --------------------------------------------------------------------------------

    @staticmethod
    async def _send(send: Send, scope: Scope, body: bytes, etag: str | None) -> None:
        headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
        status = 200
        if etag is not None:
            headers += [(b"etag", etag.encode()), (b"cache-control", CACHE_CONTROL.encode())]
            if etag_matches(Request(scope), etag):
                status, body = 304, b""
        if status == 200:
            headers.append((b"content-length", str(len(body)).encode()))
        else:
            headers = headers[1:]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _caller(request: Request, services: Any, route: Route) -> Principal | None:
    """Return the caller if deps.authorize would let them reach `route`; None otherwise."""
    if route in PUBLIC_ROUTES:
        return None
    principal = authenticate_request(request, services)
    if principal is None:
        return None
    if principal.needs_enrolment and route not in ENROLMENT_ROUTES:
        return None
    if not principal.is_admin and route not in MEMBER_ROUTES:
        return None
    return principal


async def _capture(app: ASGIApp, scope: Scope, receive: Receive,
                   send: Send) -> tuple[bytes, str] | None:
    """Run the application once; return its 200 JSON body and ETag without sending it.

    Anything else (an error, a streamed body) is sent to the caller as it was, and None
    returned.
    """
    start: dict[str, Any] = {}
    chunks: list[bytes] = []
    passed = False

    async def keep(message: Message) -> None:
        nonlocal passed
        if passed:
            await send(message)
            return
        if message["type"] == "http.response.start":
            start.update(message)
            if message.get("status") != 200:
                passed = True
                await send(message)
            return
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                passed = True  # streamed: not ours to keep
                await send(start)
                await send({"type": "http.response.body", "body": b"".join(chunks),
                            "more_body": True})

    await app(scope, receive, keep)
    if passed or not start:
        return None
    body = b"".join(chunks)
    return body, _etag(body)
