"""Cap request body sizes before anything parses them (413 with the usual error body)."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stackhub.api.errors import body

DEFAULT_LIMIT = 1024 * 1024
LARGE_LIMITS = {"/api/instances": 4 * 1024 * 1024, "/api/plans": 4 * 1024 * 1024}
STREAMED_SUFFIX = "/files/upload"  # file manager uploads: the route enforces its own cap
STREAMED_LIMIT = 2 ** 62


class BodyLimit:
    """Refuse request bodies above a per-path limit, by header or while streaming."""

    def __init__(self, app: ASGIApp, *, default: int = DEFAULT_LIMIT,
                 large: dict[str, int] | None = None) -> None:
        """Wrap `app`."""
        self.app = app
        self.default = default
        self.large = LARGE_LIMITS if large is None else large

    def limit_for(self, path: str) -> int:
        """Return the body limit of a path."""
        if path.startswith("/api/") and path.endswith(STREAMED_SUFFIX):
            return STREAMED_LIMIT
        return self.large.get(path.rstrip("/"), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass small bodies through; answer 413 for large ones."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(send, limit)
            return
        state: dict[str, Any] = {"seen": 0, "refused": False, "started": False}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["seen"] += len(message.get("body", b""))
                if state["seen"] > limit and not state["refused"]:
                    state["refused"] = True
                    if not state["started"]:
                        await _too_large(send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if state["refused"]:
                return  # the 413 already went out
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


async def _too_large(send: Send, limit: int) -> None:
    payload = json.dumps(body("too_large", f"the request body is larger than {limit} bytes"))
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload.encode()})
