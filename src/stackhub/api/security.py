"""HTTP hardening in one ASGI middleware: trusted proxies, Origin/CSRF checks, CORS, headers.

- ``X-Forwarded-For/-Proto/-Host`` are honoured only when the direct peer is a configured
  trusted proxy; nothing is ever granted by source address.
- Unsafe methods without an ``Authorization`` header are refused when ``Origin`` (or
  ``Referer``) names a foreign site; when they ride on the session cookie they also need
  ``X-CSRF-Token`` equal to the CSRF cookie and an Origin or Referer of our own.
- CORS answers only configured origins, never ``*``.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Iterable
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stackhub.api.deps import CSRF_COOKIE, CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE
from stackhub.api.errors import body
from stackhub.auth.models import normalise_origin
from stackhub.auth.ratelimit import RateLimited
from stackhub.auth.settings import DEFAULT_VIEW, SecurityView

CSRF_EXEMPT = frozenset({"/api/auth/login", "/api/auth/setup"})
"""Public sign-in routes: no session to protect yet, so only the Origin check applies."""
# styles may be inline: the console's UI kit injects <style> at run time; scripts may not
CSP = ("default-src 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'none'; "
       "form-action 'self'; img-src 'self' data:; connect-src 'self'; "
       "style-src 'self' 'unsafe-inline'")
DOCS_CSP = ("default-src 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'none'; "
            "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: "
            "https://fastapi.tiangolo.com")
HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
HSTS = "max-age=31536000"
CORS_METHODS = "GET, POST, PUT, PATCH, DELETE"
CORS_HEADERS = "Authorization, Content-Type, X-CSRF-Token"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _cookies(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(_header(scope, b"cookie") or "")
    except CookieError:
        return {}
    return {k: m.value for k, m in jar.items()}


def _set_header(scope: Scope, name: bytes, value: str) -> None:
    headers = [(k, v) for k, v in scope.get("headers") or [] if k != name]
    headers.append((name, value.encode("latin-1")))
    scope["headers"] = headers


def _host_key(host: str, scheme: str) -> str:
    try:
        return normalise_origin(f"{scheme}://{host}").split("://", 1)[1]
    except ValueError:
        return ""


def origin_allowed(origin: str, scope: Scope, view: SecurityView) -> bool:
    """Say whether an Origin is the request's own host or a configured origin."""
    try:
        normal = normalise_origin(origin)
        scheme = urlsplit(origin).scheme.lower()
    except ValueError:
        return False
    if scheme not in ("http", "https"):
        return False
    if normal in view.origins:
        return True
    host = _header(scope, b"host") or ""
    own = _host_key(host, scheme)
    return bool(own) and normal.split("://", 1)[1] == own


def _referer_origin(scope: Scope) -> str | None:
    referer = _header(scope, b"referer")
    if not referer:
        return None
    parts = urlsplit(referer)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "null"


def _client_from(forwarded: str, view: SecurityView) -> str | None:
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):  # the rightmost address no trusted proxy vouches for
        if not view.trusted(hop):
            return hop
    return hops[0] if hops else None


def apply_proxy(scope: Scope, view: SecurityView) -> None:
    """Take client, scheme and host from X-Forwarded-* only when the peer is trusted."""
    client = scope.get("client")
    if not client or not view.trusted(str(client[0])):
        return
    forwarded_for = _header(scope, b"x-forwarded-for")
    if forwarded_for:
        real = _client_from(forwarded_for, view)
        if real:
            scope["client"] = (real, 0)
    proto = (_header(scope, b"x-forwarded-proto") or "").split(",")[0].strip().lower()
    if proto in ("http", "https"):
        scope["scheme"] = proto if scope["type"] == "http" else {"http": "ws",
                                                                 "https": "wss"}[proto]
    host = (_header(scope, b"x-forwarded-host") or "").split(",")[0].strip()
    if host and re.fullmatch(r"[A-Za-z0-9.\-:\[\]]{1,260}", host):
        _set_header(scope, b"host", host)


def security_view(scope: Scope) -> SecurityView:
    """Return the current security settings (defaults before the server has started)."""
    app = scope.get("app")
    services = getattr(getattr(app, "state", None), "services", None)
    auth = getattr(services, "auth", None)
    return auth.settings.view if auth is not None else DEFAULT_VIEW


def csrf_problem(scope: Scope, method: str, view: SecurityView) -> str | None:
    """Return why an unsafe request must be refused as cross-site, or None."""
    if method in SAFE_METHODS or _header(scope, b"authorization") is not None:
        return None  # bearer tokens are never sent by browsers on their own
    origin = _header(scope, b"origin") or _referer_origin(scope)
    if origin is not None and not origin_allowed(origin, scope, view):
        return "cross-site request refused: the Origin is not allowed"
    cookies = _cookies(scope)
    if SESSION_COOKIE not in cookies or scope.get("path") in CSRF_EXEMPT:
        return None
    if origin is None:
        return "cross-site request refused: the Origin header is missing"
    sent = _header(scope, CSRF_HEADER.encode()) or ""
    expected = cookies.get(CSRF_COOKIE, "")
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return "cross-site request refused: missing or wrong X-CSRF-Token header"
    return None


def _extra_headers(scope: Scope, view: SecurityView, origin: str | None) -> list[tuple[bytes,
                                                                                      bytes]]:
    path = str(scope.get("path", ""))
    out = [(k.encode(), v.encode()) for k, v in HEADERS.items()]
    out.append((b"content-security-policy",
                (DOCS_CSP if path.startswith("/api/docs") else CSP).encode()))
    if scope.get("scheme") == "https":
        out.append((b"strict-transport-security", HSTS.encode()))
    if path.startswith("/api/"):
        out.append((b"cache-control", b"no-store"))
    if origin is not None and _configured(origin, view):
        out += [(b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-allow-credentials", b"true")]
    out.append((b"vary", b"Origin"))
    return out


def _configured(origin: str, view: SecurityView) -> bool:
    try:
        return normalise_origin(origin) in view.origins
    except ValueError:
        return False


def _merge(headers: Iterable[tuple[bytes, bytes]],
           extra: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    present = {k.lower() for k, _ in headers}
    return [*headers, *[(k, v) for k, v in extra if k not in present]]


async def _send_json(send: Send, status: int, payload: dict[str, Any],
                     headers: list[tuple[bytes, bytes]]) -> None:
    raw = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(raw)).encode()), *headers]})
    await send({"type": "http.response.body", "body": raw})


class SecurityMiddleware:
    """Resolve proxies, refuse cross-site writes, answer CORS, add security headers."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap the application."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one connection."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        view = security_view(scope)
        apply_proxy(scope, view)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        method = str(scope.get("method", "GET")).upper()
        origin = _header(scope, b"origin")
        extra = _extra_headers(scope, view, origin)
        if method == "OPTIONS" and origin and _header(scope, b"access-control-request-method"):
            allowed = _configured(origin, view)
            headers = [(b"access-control-allow-methods", CORS_METHODS.encode()),
                       (b"access-control-allow-headers", CORS_HEADERS.encode()),
                       (b"access-control-max-age", b"600")] if allowed else []
            await _send_json(send, 204 if allowed else 403, {} if allowed else body(
                "forbidden", "cross-origin requests from this origin are not allowed"),
                _merge(headers, extra))
            return
        problem = csrf_problem(scope, method, view)
        if problem is not None:
            await _send_json(send, 403, body("forbidden", problem), extra)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _merge(list(message.get("headers") or []), extra)
            await send(message)

        await self.app(scope, receive, send_with_headers)


# secrets in logs ----------------------------------------------------------------------------

_REDACT = [
    (re.compile(r"\b(sh[kts]_)[A-Za-z0-9_\-]{6,}"), r"\1[redacted]"),
    (re.compile(r"(?i)\b(bearer\s+)[^\s\"',]+"), r"\1[redacted]"),
    (re.compile(r"(?i)(\"?(?:password|passwd|secret|token|setup_token|current|new)\"?\s*[:=]"
                r"\s*\"?)[^\"\s,}&]+"), r"\1[redacted]"),
]
_UNREDACTED = ("stackhub.setup",)


def redact(text: str) -> str:
    """Mask tokens, bearer credentials and password fields in a log line."""
    for pattern, replacement in _REDACT:
        text = pattern.sub(replacement, text)
    return text


def install_log_redaction() -> None:
    """Redact secrets from every log record (once per process)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "stackhub_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.name.startswith(_UNREDACTED):
            return record
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is not ours to fix here
            return record
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return record

    factory.stackhub_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def install(app: FastAPI) -> None:
    """Add the middleware, the rate-limit answer and log redaction to `app`."""

    async def rate_limited(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RateLimited)
        return JSONResponse(body(exc.code, exc.message, exc.details), status_code=429,
                            headers={"Retry-After": str(exc.retry_after)})

    app.add_exception_handler(RateLimited, rate_limited)
    app.add_middleware(SecurityMiddleware)
    install_log_redaction()
