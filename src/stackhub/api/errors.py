"""Map StackHub's error tree to HTTP status codes and websocket error codes, in one place."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from stackhub import errors


class ErrorDetail(BaseModel):
    """What went wrong: a stable code, a message for people, and structured details."""

    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    """Every error answer of the API (and websocket error results) has this shape."""

    error: ErrorDetail


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Return OpenAPI `responses` entries for these error statuses, all with ErrorBody."""
    meaning = {401: "Not signed in, or the credential is no longer valid",
               403: "Signed in, but this account may not do this (admins only, or not granted)",
               413: "The request body is too large",
               422: "The request is invalid (the message names the field)",
               429: "Too many attempts; retry after the Retry-After header's seconds"}
    return {status: {"model": ErrorBody, "description": meaning[status]} for status in statuses}

STATUS: dict[type[errors.StackHubError], int] = {
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.Conflict: 409,
    errors.TooLarge: 413,
    errors.Invalid: 422,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.RiskNotAccepted: 428,
    errors.EngineUnavailable: 503,
    errors.ImagePullFailed: 502,
    errors.EngineError: 502,
    errors.StoreError: 502,
    errors.RepositoryError: 502,
    errors.StorageFull: 507,
    errors.GatewayUnavailable: 503,
}


def status_of(err: errors.StackHubError) -> int:
    """Return the HTTP status for an error (most specific class wins)."""
    for cls in type(err).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the JSON error body shared by HTTP and websocket."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


def install(app: FastAPI) -> None:
    """Register the exception handlers on `app`."""

    async def stackhub_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.StackHubError)
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, errors.Unauthorized) else None
        return JSONResponse(body(exc.code, exc.message, exc.details), status_code=status_of(exc),
                            headers=headers)

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for item in exc.errors():
            where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
            problems.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
        return JSONResponse(body("invalid", "; ".join(problems) or "invalid request"),
                            status_code=422)

    app.add_exception_handler(errors.StackHubError, stackhub_error)
    app.add_exception_handler(RequestValidationError, validation_error)
