"""HTTP routes for signing in and out, sessions, passwords, TOTP and one's own API tokens."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Request, Response

from stackhub.api.deps import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    PrincipalDep,
    ServicesDep,
    authenticate_request,
    client_ip,
)
from stackhub.auth.models import (
    CodeRequest,
    LoginRequest,
    LoginResult,
    PasswordChange,
    RecoveryCodes,
    SessionRead,
    SetupRequest,
    StatusRead,
    TokenCreate,
    TokenCreated,
    TokenRead,
    TotpEnrolment,
    UserEnvelope,
)
from stackhub.auth.service import SignIn
from stackhub.auth.sessions import ABSOLUTE, PENDING
from stackhub.errors import Unauthorized

public_router = APIRouter(prefix="/api/auth", tags=["auth"])
"""Routes reachable before signing in (listed in deps.PUBLIC_ROUTES)."""
router = APIRouter(prefix="/auth", tags=["auth"])
tokens_router = APIRouter(prefix="/tokens", tags=["auth"])


def _agent(request: Request) -> str:
    return request.headers.get("user-agent", "")[:256]


def set_session_cookies(request: Request, response: Response, sign_in: SignIn) -> None:
    """Set the HttpOnly session cookie and the script-readable CSRF cookie."""
    secure = request.url.scheme == "https"
    age = int((PENDING if sign_in.session.pending else ABSOLUTE).total_seconds())
    response.set_cookie(SESSION_COOKIE, sign_in.cookie, max_age=age, path="/", secure=secure,
                        httponly=True, samesite="strict")
    response.set_cookie(CSRF_COOKIE, sign_in.session.csrf, max_age=age, path="/",
                        secure=secure, httponly=False, samesite="strict")


def clear_session_cookies(request: Request, response: Response) -> None:
    """Remove both cookies."""
    secure = request.url.scheme == "https"
    for name, httponly in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", secure=secure, httponly=httponly,
                               samesite="strict")


@public_router.get("/status", response_model=StatusRead)
async def status(request: Request, services: ServicesDep) -> StatusRead:
    """Say whether setup is needed and who is signed in (no authentication needed)."""
    try:
        principal = authenticate_request(request, services)
    except Unauthorized:
        principal = None
    return services.auth.status(principal)


@public_router.post("/setup", response_model=UserEnvelope, status_code=201)
async def setup(body: SetupRequest, request: Request, response: Response,
                services: ServicesDep) -> UserEnvelope:
    """Create the first admin with the setup token from the server log, and sign in."""
    sign_in = await asyncio.to_thread(services.auth.setup, body, ip=client_ip(request),
                                      user_agent=_agent(request))
    set_session_cookies(request, response, sign_in)
    assert sign_in.result.user is not None
    return UserEnvelope(user=sign_in.result.user)


@public_router.post("/login", response_model=LoginResult)
async def login(body: LoginRequest, request: Request, response: Response,
                services: ServicesDep) -> LoginResult:
    """Check username and password; a TOTP code may still be needed (POST /api/auth/totp)."""
    sign_in = await asyncio.to_thread(services.auth.login, body, ip=client_ip(request),
                                      user_agent=_agent(request),
                                      old_cookie=request.cookies.get(SESSION_COOKIE))
    set_session_cookies(request, response, sign_in)
    return sign_in.result


@public_router.post("/totp", response_model=LoginResult)
async def complete_totp(body: CodeRequest, request: Request, response: Response,
                        services: ServicesDep) -> LoginResult:
    """Finish a sign-in with a TOTP or recovery code; the session id changes."""
    pending = services.auth.pending_session(request.cookies.get(SESSION_COOKIE))
    sign_in = services.auth.complete_totp(pending, body.code, ip=client_ip(request),
                                          user_agent=_agent(request))
    set_session_cookies(request, response, sign_in)
    return sign_in.result


@router.post("/logout", status_code=204, response_class=Response)
async def logout(request: Request, services: ServicesDep, principal: PrincipalDep) -> Response:
    """End this session and close its websockets."""
    services.auth.logout(principal, ip=client_ip(request))
    response = Response(status_code=204)
    clear_session_cookies(request, response)
    return response


@router.get("/sessions", response_model=list[SessionRead])
async def list_sessions(services: ServicesDep, principal: PrincipalDep) -> list[SessionRead]:
    """List your sessions."""
    return services.auth.list_sessions(principal)


@router.delete("/sessions/{session_id}", status_code=204, response_class=Response)
async def revoke_session(session_id: str, request: Request, services: ServicesDep,
                         principal: PrincipalDep) -> Response:
    """End one of your sessions."""
    services.auth.revoke_session(principal, session_id, ip=client_ip(request))
    return Response(status_code=204)


@router.post("/password", status_code=204, response_class=Response)
async def change_password(body: PasswordChange, request: Request, services: ServicesDep,
                          principal: PrincipalDep) -> Response:
    """Change your password; your other sessions end."""
    await asyncio.to_thread(services.auth.change_password, principal, body,
                            ip=client_ip(request))
    return Response(status_code=204)


@router.post("/totp/enroll", response_model=TotpEnrolment)
async def enrol_totp(services: ServicesDep, principal: PrincipalDep) -> TotpEnrolment:
    """Start TOTP enrolment: scan the QR code, then confirm with a code."""
    return services.auth.enrol_totp(principal)


@router.post("/totp/confirm", response_model=RecoveryCodes)
async def confirm_totp(body: CodeRequest, request: Request, services: ServicesDep,
                       principal: PrincipalDep) -> RecoveryCodes:
    """Turn TOTP on with a first code; returns ten single-use recovery codes, once."""
    return services.auth.confirm_totp(principal, body.code, ip=client_ip(request))


@router.delete("/totp", status_code=204, response_class=Response)
async def disable_totp(body: Annotated[CodeRequest, Body()], request: Request,
                       services: ServicesDep, principal: PrincipalDep) -> Response:
    """Turn TOTP off, proven by a current code or a recovery code."""
    services.auth.disable_totp(principal, body.code, ip=client_ip(request))
    return Response(status_code=204)


@tokens_router.get("", response_model=list[TokenRead])
async def list_tokens(services: ServicesDep, principal: PrincipalDep) -> list[TokenRead]:
    """List your API tokens (never their secrets)."""
    return services.auth.accounts.list_tokens(principal)


@tokens_router.post("", response_model=TokenCreated, status_code=201)
async def create_token(body: TokenCreate, request: Request, services: ServicesDep,
                       principal: PrincipalDep) -> TokenCreated:
    """Create an API token; its secret is shown only in this answer."""
    return services.auth.accounts.create_token(principal, body, ip=client_ip(request))


@tokens_router.delete("/{token_id}", status_code=204, response_class=Response)
async def revoke_token(token_id: str, request: Request, services: ServicesDep,
                       principal: PrincipalDep) -> Response:
    """Revoke one of your API tokens."""
    services.auth.accounts.revoke_token(principal, token_id, ip=client_ip(request))
    return Response(status_code=204)
