"""Guard every websocket route in one place: Origin, sign-in, role, revocation and expiry.

A route opens its socket with ``async with guarded_socket(ws) as session:``. Before anything
else a foreign ``Origin`` is refused (close 1008, before accepting: the browser sees a failed
handshake). Then the socket is accepted and signed in by a Bearer header, the session cookie
(browsers only, i.e. when an Origin is sent) or a first ``{"type": "auth", "token": ...}``
message. A bad or missing credential gets ``auth_invalid`` and close 4401; a principal the
route refuses (``require_admin``, ``check``) gets ``auth_forbidden`` and close 4403. Accepted
sockets get ``{"type": "auth_ok"}``, are registered so that logout, revocation and account
changes close them, and re-check their credential every RECHECK_EVERY seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import WebSocket, WebSocketDisconnect

from stackhub.api.deps import SESSION_COOKIE, Principal, authenticate_token
from stackhub.api.errors import body
from stackhub.api.security import origin_allowed, security_view
from stackhub.errors import Forbidden, StackHubError, Unauthorized
from stackhub.services import Services

__all__ = ["AUTH_TIMEOUT", "RECHECK_EVERY", "Check", "GuardedSocket", "guarded_socket",
           "refuse"]

log = logging.getLogger("stackhub.ws")

AUTH_TIMEOUT = 10.0
"""How long a socket without header or cookie credential may take to send its auth message."""
RECHECK_EVERY = 60.0
"""How often an open socket re-checks its session or token (expiry and revocation)."""
ENDED = "the session or token has ended"
CLOSE_FOREIGN_ORIGIN = 1008
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403

Check = Callable[[Principal], None]
"""A route's own rule on the caller: raise Forbidden (or NotFound) to refuse it."""
Recheck = Callable[[], Principal | None]


async def refuse(ws: WebSocket, err: StackHubError) -> None:
    """Tell the client why it is refused, then close: 4401 for Unauthorized, else 4403."""
    unauthorized = isinstance(err, Unauthorized)
    kind = "auth_invalid" if unauthorized else "auth_forbidden"
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await ws.send_json({"id": None, "type": kind, **body(err.code, err.message)})
        await ws.close(code=CLOSE_UNAUTHORIZED if unauthorized else CLOSE_FORBIDDEN)


def _header_token(ws: WebSocket) -> str | None:
    header = ws.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token else None


async def _authenticate(ws: WebSocket, services: Services, *,
                        browser: bool) -> tuple[Principal, Recheck]:
    """Authenticate by Bearer header, session cookie (browsers) or a first auth message."""
    if "authorization" in ws.headers:
        token = _header_token(ws)
        principal = authenticate_token(services, token)
    else:
        cookie = ws.cookies.get(SESSION_COOKIE) if browser else None
        found = services.auth.session_principal(cookie) if cookie else None
        if found is not None and cookie is not None:
            session_cookie = cookie
            return found, lambda: services.auth.session_principal(session_cookie)
        token = None
        # compatibility: a client that cannot set headers sends the token first
        with contextlib.suppress(TimeoutError, ValueError):
            first = await asyncio.wait_for(ws.receive_json(), AUTH_TIMEOUT)
            if isinstance(first, dict) and first.get("type") == "auth":
                token = str(first.get("token", ""))
        principal = authenticate_token(services, token)
    secret = token or ""

    def recheck() -> Principal | None:
        try:
            return authenticate_token(services, secret)
        except Unauthorized:
            return None

    return principal, recheck


def _admin_only(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("only admins may do this")


def _judge(principal: Principal, checks: tuple[Check, ...]) -> None:
    """Apply the policy every socket shares, then the route's own rules."""
    if principal.needs_enrolment:
        raise Unauthorized("an admin requires two-factor authentication: enrol first",
                           details={"reason": "enrol_required"})
    for check in checks:
        check(principal)


class GuardedSocket:
    """An accepted, signed-in websocket: who holds it and whether they still may."""

    def __init__(self, ws: WebSocket, services: Services, principal: Principal,
                 recheck: Recheck, checks: tuple[Check, ...]) -> None:
        """Hold the socket, the caller and how to re-check them."""
        self.ws = ws
        self.services = services
        self.principal = principal
        self._recheck = recheck
        self._checks = checks

    def problem(self) -> StackHubError | None:
        """Re-check the credential and the route's rules; return why access ended, or None."""
        current = self._recheck()
        if current is None:
            return Unauthorized(ENDED)
        try:
            _judge(current, self._checks)
        except StackHubError as err:
            return err
        return None

    def still_allowed(self) -> bool:
        """Say whether the socket's session or token, and its role, still allow the route."""
        return self.problem() is None

    async def ensure_allowed(self) -> bool:
        """Re-check now; if access ended, tell the client, close the socket and return False."""
        err = self.problem()
        if err is None:
            return True
        await refuse(self.ws, err)
        return False

    async def watch(self) -> None:
        """Close the socket once access ends, even while it only receives (every RECHECK_EVERY)."""
        while True:
            await asyncio.sleep(RECHECK_EVERY)
            err = await asyncio.to_thread(self.problem)
            if err is not None:
                await refuse(self.ws, err)
                return


def _foreign_origin(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    return origin is not None and not origin_allowed(origin, ws.scope, security_view(ws.scope))


async def _sign_in(ws: WebSocket, services: Services,
                   checks: tuple[Check, ...]) -> tuple[Principal, Recheck] | None:
    """Authenticate an accepted socket and apply the rules; refuse it and return None if not."""
    try:
        principal, recheck = await _authenticate(ws, services, browser="origin" in ws.headers)
    except Unauthorized as err:
        await refuse(ws, err)
        return None
    except WebSocketDisconnect:
        return None  # gone before signing in
    try:
        _judge(principal, checks)
    except StackHubError as err:
        await refuse(ws, err)
        return None
    return principal, recheck


@asynccontextmanager
async def guarded_socket(ws: WebSocket, services: Services | None = None, *,
                         require_admin: bool = False,
                         check: Check | None = None) -> AsyncIterator[GuardedSocket | None]:
    """Check Origin, accept, sign in and register `ws`; yield its session, or None if refused.

    A None session means the socket is already closed: return at once. While the block runs,
    logout or revocation closes the socket (4401) and a watchdog re-checks access. A client
    disconnecting ends the block quietly; on exit the watchdog stops and the socket is
    forgotten.
    """
    svc: Services = services if services is not None else ws.app.state.services
    if _foreign_origin(ws):
        log.warning("websocket from foreign origin %r refused",
                    str(ws.headers.get("origin"))[:200])
        await ws.close(code=CLOSE_FOREIGN_ORIGIN)
        yield None
        return
    checks = tuple(c for c in (_admin_only if require_admin else None, check) if c is not None)
    await ws.accept()
    signed_in = await _sign_in(ws, svc, checks)
    if signed_in is None:
        yield None
        return
    principal, recheck = signed_in

    async def close(code: int, reason: str) -> None:
        await ws.close(code=code, reason=reason)

    entry = svc.auth.sockets.add(principal, close)
    session = GuardedSocket(ws, svc, principal, recheck, checks)
    watchdog: asyncio.Task[None] | None = None
    try:
        await ws.send_json({"type": "auth_ok"})
        watchdog = asyncio.create_task(session.watch())
        yield session
    except WebSocketDisconnect:
        pass
    finally:
        if watchdog is not None:
            watchdog.cancel()
        svc.auth.sockets.remove(entry)
