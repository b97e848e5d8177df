"""Shared request dependencies as Annotated aliases: services, the caller, and the role policy.

Every route under ``/api`` passes `authorize`: authentication is required unless the route is in
PUBLIC_ROUTES, and members reach only the routes in MEMBER_ROUTES (new routes are admin-only
until listed there).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any

import fastapi.routing
from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from stackhub.auth.admin_token import matches
from stackhub.auth.models import BUILTIN_ADMIN, Principal, Role
from stackhub.errors import Forbidden, Unauthorized
from stackhub.services import Services

__all__ = ["Principal"]

SESSION_COOKIE = "stackhub_session"
CSRF_COOKIE = "stackhub_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Route = tuple[str, str]
PUBLIC_ROUTES: frozenset[Route] = frozenset({
    ("GET", "/"),  # the console's page when it is not built (static assets are public too)
    ("GET", "/api/health"),
    ("GET", "/api/auth/status"),
    ("POST", "/api/auth/setup"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/totp"),  # needs the pending session of a password sign-in
    ("GET", "/api/gateway/ask"),  # Caddy's on-demand TLS question; needs the config's token
    ("GET", "/api/auth/forward"),  # the gateway's forward-auth question; needs the token
    ("GET", "/api/auth/gateway"),  # sign-in hand-off to a protected app (checks the session)
})
"""Routes reachable without a full sign-in; everything else requires authentication."""

ENROLMENT_ROUTES: frozenset[Route] = frozenset({
    ("POST", "/api/auth/logout"),
    ("GET", "/api/auth/sessions"),
    ("DELETE", "/api/auth/sessions/{session_id}"),
    ("POST", "/api/auth/password"),
    ("POST", "/api/auth/totp/enroll"),
    ("POST", "/api/auth/totp/confirm"),
})
"""What a user may do while an admin requires 2FA and they have not enrolled yet."""

MEMBER_ROUTES: frozenset[Route] = ENROLMENT_ROUTES | {
    ("DELETE", "/api/auth/totp"),
    ("GET", "/api/tokens"),
    ("POST", "/api/tokens"),
    ("DELETE", "/api/tokens/{token_id}"),
    ("GET", "/api/instances"),  # filtered to granted instances
    ("GET", "/api/instances/{name}"),  # granted instances only
    # the file manager of a granted instance's data folder (tools/views_files.py)
    ("GET", "/api/instances/{name}/files"),
    ("DELETE", "/api/instances/{name}/files"),
    ("GET", "/api/instances/{name}/files/download"),
    ("PUT", "/api/instances/{name}/files/upload"),
    ("POST", "/api/instances/{name}/files/folder"),
    ("POST", "/api/instances/{name}/files/move"),
    ("GET", "/api/instances/{name}/files/text"),
    ("PUT", "/api/instances/{name}/files/text"),
    ("POST", "/api/instances/{name}/files/chown"),
    ("GET", "/api/instances/{name}/files/trash"),
    ("DELETE", "/api/instances/{name}/files/trash"),
    ("POST", "/api/instances/{name}/files/trash/{item}/restore"),
    # the bell: filtered to what the member may see (notify/service.py)
    ("GET", "/api/notifications"),
    ("POST", "/api/notifications/read-all"),
    ("POST", "/api/notifications/{ident}/read"),
    # metrics history (system/history_views.py): granted instances only, never the host
    ("GET", "/api/metrics/history"),
    ("GET", "/api/metrics/top"),
}
"""Routes members may call; every other authenticated route is admin-only."""

bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer ...`")
session_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False,
                              description="The console's session cookie (unsafe methods also "
                              "need the X-CSRF-Token header).")


async def get_services(request: Request) -> Services:
    """Return the server's services."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def client_ip(request: Request) -> str:
    """Return the caller's address (already resolved through trusted proxies only)."""
    return request.client.host if request.client else ""


def authenticate_token(services: Services, token: str | None) -> Principal:
    """Return the principal for a bearer token, or raise Unauthorized."""
    if token:
        if matches(token, services.admin_digest):
            return Principal(name=BUILTIN_ADMIN, role=Role.ADMIN, via="admin-token")
        principal = services.auth.token_principal(token)
        if principal is not None:
            return principal
    raise Unauthorized("authentication required: send a valid API token")


def authenticate_request(request: Request, services: Services) -> Principal | None:
    """Return the caller from the Authorization header or the session cookie, or None.

    A request with an Authorization header is judged by it alone; a bad header is an error.
    """
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be `Bearer <token>`")
        return authenticate_token(services, token.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    return services.auth.session_principal(cookie) if cookie else None


async def require_principal(request: Request, services: ServicesDep,
                      _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
                      _cookie: Annotated[str | None, Depends(session_cookie)]) -> Principal:
    """Authenticate every request that is not on the public list."""
    principal = authenticate_request(request, services)
    if principal is None:
        raise Unauthorized("authentication required: sign in or send a valid API token")
    if principal.via == "session" and request.method not in SAFE_METHODS:
        # the middleware compared header and cookie; this binds the header to the session
        sent = request.headers.get(CSRF_HEADER, "")
        if not principal.csrf or not hmac.compare_digest(sent.encode(), principal.csrf.encode()):
            raise Forbidden("cross-site request refused: the X-CSRF-Token header does not "
                            "match this session")
    return principal


PrincipalDep = Annotated[Principal, Depends(require_principal)]


# FastAPI >= 0.16x includes routers lazily: the matched route object keeps its router-local
# path, and only the route contexts know the full one
_iter_contexts: Any = getattr(fastapi.routing, "iter_route_contexts", None)


def _full_paths(request: Request, route: Any) -> frozenset[str]:
    local = frozenset({str(getattr(route, "path", ""))})
    if _iter_contexts is None:
        return local
    table: dict[int, frozenset[str]] | None = getattr(request.app.state, "route_paths", None)
    if table is None or id(route) not in table:
        found: dict[int, set[str]] = {}
        for context in _iter_contexts(request.app.routes):
            if context.path:
                found.setdefault(id(context.original_route), set()).add(str(context.path))
        table = {key: frozenset(paths) for key, paths in found.items()}
        request.app.state.route_paths = table
    return table.get(id(route), local)


def route_keys(request: Request) -> frozenset[Route]:
    """Return (method, full path template) of the matched route (several if mounted twice)."""
    method = "GET" if request.method == "HEAD" else request.method
    return frozenset((method, p) for p in _full_paths(request, request.scope.get("route")))


# The request dependencies are coroutines: a plain function would cost every request a hop
# through the thread pool each (three per request; under 200 connections on 2 cores those hops
# were most of the time spent). What they do is short: a digest, an SQLite read by primary key.
async def authorize(request: Request, principal: PrincipalDep) -> Principal:
    """Apply the role policy to an authenticated caller (router-wide dependency)."""
    return check_policy(request, principal)


def check_policy(request: Request, principal: Principal) -> Principal:
    """Return the caller if the role policy lets them reach the matched route; else raise."""
    keys = route_keys(request)
    if principal.needs_enrolment and not keys <= ENROLMENT_ROUTES:
        raise Forbidden("an admin requires two-factor authentication: enrol an authenticator "
                        "app first (POST /api/auth/totp/enroll)")
    if not principal.is_admin and not keys <= MEMBER_ROUTES:
        raise Forbidden("only admins may do this")
    return principal


def require_admin(principal: PrincipalDep) -> Principal:
    """Let only admins through (on admin routers, in addition to the policy)."""
    if not principal.is_admin:
        raise Forbidden("only admins may do this")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]


@dataclass(frozen=True)
class Auditor:
    """Record audit events on behalf of the current caller."""

    services: Services
    principal: Principal
    ip: str

    def __call__(self, action: str, target: str = "", *, success: bool = True,
                 **details: Any) -> None:
        """Append an event to the audit log."""
        self.services.auth.audit.record(actor=self.principal.name, action=action,
                                        target=target, ip=self.ip, success=success,
                                        details=details)


def get_auditor(request: Request, services: ServicesDep, principal: PrincipalDep) -> Auditor:
    """Return an auditor bound to the caller."""
    return Auditor(services, principal, client_ip(request))


AuditDep = Annotated[Auditor, Depends(get_auditor)]
