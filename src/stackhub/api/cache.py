"""Conditional GETs: a body with its strong ETag, or 304 Not Modified when the caller has it.

Responses carry `Cache-Control: private, no-cache`: a browser keeps the body but asks every
time (with `If-None-Match`), so nothing stale is ever shown, and a 304 costs no body at all.
"""

from __future__ import annotations

from fastapi import Request, Response

CACHE_CONTROL = "private, no-cache"


def matches(request: Request, etag: str) -> bool:
    """Tell whether the request's If-None-Match names `etag` (weak comparison, as RFC 9110)."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in header.split(","))


def conditional(request: Request, body: bytes, etag: str,
                media_type: str = "application/json") -> Response:
    """Return the JSON `body` with its ETag, or an empty 304 if the caller already has it."""
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if matches(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(content=body, media_type=media_type, headers=headers)
