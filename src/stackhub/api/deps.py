"""Shared request dependencies as Annotated aliases: services and the caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from stackhub.auth.admin_token import matches
from stackhub.errors import Unauthorized
from stackhub.services import Services

bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer ...`")


@dataclass(frozen=True)
class Principal:
    """Who is calling."""

    name: str
    role: str


def get_services(request: Request) -> Services:
    """Return the server's services."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def authenticate_token(services: Services, token: str | None) -> Principal:
    """Return the principal for a token, or raise Unauthorized."""
    if token and matches(token, services.admin_digest):
        return Principal(name="admin", role="admin")
    raise Unauthorized("authentication required: send a valid API token")


def require_principal(services: ServicesDep,
                      credentials: Annotated[HTTPAuthorizationCredentials | None,
                                             Depends(bearer)]) -> Principal:
    """Authenticate every request that is not on the public list."""
    return authenticate_token(services, credentials.credentials if credentials else None)


PrincipalDep = Annotated[Principal, Depends(require_principal)]
