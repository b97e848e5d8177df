"""Keep long HTTP streams (logs, operation events) only for callers whose credential holds.

A stream is authorized once, when it starts; a token revoked, a session signed out or an
account demoted afterwards must not keep receiving it. Websockets re-check on the same
schedule (``api/sockets.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request

from stackhub.api.deps import authenticate_request, check_policy
from stackhub.api.sockets import RECHECK_EVERY  # one interval for sockets and streams
from stackhub.errors import StackHubError
from stackhub.services import Services

__all__ = ["RECHECK_EVERY", "credential_check", "guarded"]


def credential_check(request: Request, services: Services) -> Callable[[], bool]:
    """Return a check that `request`'s token or session, and its role, still allow the route."""

    def check() -> bool:
        try:
            principal = authenticate_request(request, services)
            return principal is not None and check_policy(request, principal) is not None
        except StackHubError:
            return False

    return check


async def guarded(stream: AsyncIterator[str], allowed: Callable[[], bool], *,
                  every: float | None = None) -> AsyncIterator[str]:
    """Pass `stream` on; end it (closing it) once `allowed()` fails, checked every `every` s.

    The check runs on a timer, not per line, so a quiet stream (logs idle for hours) ends
    as soon as its caller loses access too.
    """
    loop = asyncio.get_running_loop()
    period = RECHECK_EVERY if every is None else every
    deadline = loop.time() + period
    pending: asyncio.Future[Any] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(stream))
            done, _ = await asyncio.wait({pending}, timeout=max(0.0, deadline - loop.time()))
            if not done:
                if not await asyncio.to_thread(allowed):
                    return
                deadline = loop.time() + period
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield item
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()
