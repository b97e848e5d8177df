"""Deny by default: every route is public by the explicit list or needs auth, and roles hold.

The matrix is generated from the live route table, so a route added later without thought is
caught: anonymous callers get 401 on it, members 403 unless it is listed for them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from stackhub.api.deps import MEMBER_ROUTES, PUBLIC_ROUTES, authorize, require_admin
from stackhub.auth.admin_views import router as admin_router

from .conftest import ADMIN, MEMBER, Server, bearer


def calls(dependant: Dependant) -> set[Callable[..., Any]]:
    """Collect every dependency callable of a route, recursively."""
    found: set[Callable[..., Any]] = set()
    for dep in dependant.dependencies:
        if dep.call is not None:
            found.add(dep.call)
        found |= calls(dep)
    return found


def http_routes(server: Server) -> Iterator[tuple[str, str, Dependant]]:
    """Yield (method, full path, dependant) for every HTTP API route (routers flattened)."""
    for context in iter_route_contexts(server.app.routes):
        if isinstance(context.original_route, APIRoute):
            for method in sorted(context.methods or ()):
                yield method, str(context.path), context.dependant


def test_every_route_is_public_by_the_list_or_authorised(server: Server) -> None:
    """Walk app.routes: nothing is reachable without auth unless it is on the public list."""
    seen = 0
    for context in iter_route_contexts(server.app.routes):
        route = context.original_route
        methods = {"GET" if m == "HEAD" else m for m in context.methods or ()}
        if isinstance(route, APIRoute):
            for method in methods:
                key = (method, str(context.path))
                if key in PUBLIC_ROUTES:
                    continue
                assert authorize in calls(context.dependant), f"{key} skips authorize"
                seen += 1
        elif isinstance(route, APIWebSocketRoute):
            # authenticate inside through api/sockets.py: see test_websocket_routes.py
            assert context.path in {"/api/ws", "/api/instances/{name}/terminal",
                                    "/api/host/terminal"}
        elif isinstance(route, Mount):
            assert not str(context.path).startswith("/api"), f"mount {context.path} under /api"
        elif isinstance(route, Route):
            for method in methods:
                key = (method, str(context.path))
                assert key in PUBLIC_ROUTES, f"{key} is a plain route outside the policy"
        else:
            pytest.fail(f"unexpected route type {type(route).__name__} at {context.path}")
    assert seen > 30


def test_public_list_names_only_existing_routes(server: Server) -> None:
    """A stale public entry could later expose a new route by accident."""
    existing = {("GET" if m == "HEAD" else m, str(c.path))
                for c in iter_route_contexts(server.app.routes) for m in (c.methods or ())}
    if any(isinstance(c.original_route, Mount) and str(c.path) in ("", "/")
           for c in iter_route_contexts(server.app.routes)):
        existing.add(("GET", "/"))  # the built console is a static mount at /
    assert existing >= PUBLIC_ROUTES
    assert existing >= MEMBER_ROUTES


def test_admin_router_carries_require_admin_and_is_not_open_to_members(server: Server) -> None:
    """The admin router declares require_admin, and none of its routes is listed for members."""
    for route in admin_router.routes:
        assert isinstance(route, APIRoute)
        assert require_admin in calls(route.dependant)
    for method, path, dependant in http_routes(server):
        if require_admin in calls(dependant):
            assert (method, path) not in MEMBER_ROUTES


def _request(client: TestClient, method: str, path: str,
             headers: dict[str, str] | None = None) -> int:
    url = re.sub(r"\{[^}]+\}", "x1", path)
    kwargs: dict[str, Any] = {"headers": headers or {}}
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        kwargs["json"] = {}
    if url.endswith("/logs"):
        kwargs["params"] = {"follow": "false"}
    return client.request(method, url, **kwargs).status_code


def _private(server: Server) -> list[tuple[str, str]]:
    return sorted({(m, p) for m, p, _ in http_routes(server)
                   if p.startswith("/api/") and (m, p) not in PUBLIC_ROUTES})


def test_anonymous_gets_401_on_every_private_route(server: Server) -> None:
    """No credentials: 401 everywhere off the public list (even with a spoofed localhost)."""
    client = server.new_client()
    for method, path in _private(server):
        status = _request(client, method, path, {"X-Forwarded-For": "127.0.0.1"})
        assert status == 401, f"{method} {path} answered {status} without credentials"


def test_member_gets_403_on_every_admin_route(ready: Server) -> None:
    """A member (by session or by API token) is refused everything not listed for members."""
    session = ready.signed_in(*MEMBER)
    token = ready.user_token(session)
    for method, path in _private(ready):
        status = _request(ready.new_client(), method, path, bearer(token))
        if (method, path) in MEMBER_ROUTES:
            assert status != 403, f"member refused on its own route {method} {path}"
        else:
            assert status == 403, f"member reached {method} {path}: {status}"


def test_member_session_gets_403_on_admin_routes_too(ready: Server) -> None:
    """Cookie sessions follow the same policy (with a valid CSRF token)."""
    session = ready.signed_in(*MEMBER)
    headers = {"X-CSRF-Token": session.cookies.get("stackhub_csrf") or "",
               "Origin": "http://testserver"}
    for method, path in _private(ready):
        if (method, path) in MEMBER_ROUTES or path == "/api/auth/logout":
            continue
        status = _request(session, method, path, headers)
        assert status == 403, f"member session reached {method} {path}: {status}"


def test_admin_is_not_refused_anywhere(ready: Server) -> None:
    """An admin's API token passes the policy on every route (other errors may follow)."""
    token = ready.user_token(ready.signed_in(*ADMIN))
    for method, path in _private(ready):
        if path == "/api/auth/logout":
            continue
        status = _request(ready.new_client(), method, path, bearer(token))
        assert status not in (401, 403), f"admin refused on {method} {path}: {status}"
