"""The one websocket protocol: requests with id and type, replies and events carry the id.

Origin, sign-in, revocation and expiry are the socket guard's (``api/sockets.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ValidationError

from stackhub.api.deps import Principal
from stackhub.api.errors import body
from stackhub.api.sockets import GuardedSocket, guarded_socket
from stackhub.errors import Forbidden, Invalid, NotFound, StackHubError
from stackhub.events import Event, Subscription
from stackhub.services import Services
from stackhub.system import metrics

router = APIRouter()
MEMBER_TOPICS = {"operation", "instance"}  # members: only for instances granted to them
SHARED_TOPICS = {"engine", "notification"}  # everyone signed in: no key; notification events
# carry no content (readers re-read GET /api/notifications, which is filtered for them)
TOPICS = {"operation", "instance", "metrics", "engine", "notification"}


class Subscribe(BaseModel):
    """Subscribe to events of a topic, optionally of one key (an instance name)."""

    id: int
    type: str
    topic: str
    key: str | None = None


class Connection:
    """One websocket client: its principal and subscriptions."""

    def __init__(self, ws: WebSocket, services: Services, principal: Principal) -> None:
        """Start with no subscriptions."""
        self.ws = ws
        self.services = services
        self.principal = principal
        self.subs: dict[int, tuple[Subscription, asyncio.Task[None]]] = {}

    def visible(self, key: str | None) -> bool:
        """Say whether the caller may see events about an instance."""
        if self.principal.is_admin:
            return True
        return key is not None and self.services.auth.accounts.may_see(self.principal, key)

    def check_subscription(self, req: Subscribe) -> None:
        """Let members subscribe only to instances granted to them."""
        if self.principal.is_admin or req.topic in SHARED_TOPICS:
            return
        if req.topic not in MEMBER_TOPICS:
            raise Forbidden(f"only admins may subscribe to {req.topic!r}")
        if req.key is None:
            raise Forbidden("members subscribe to one instance at a time: give its name as key")
        if not self.visible(req.key):
            raise NotFound(f"no instance named {req.key!r}")

    async def send(self, message: dict[str, Any]) -> None:
        """Send one JSON message."""
        await self.ws.send_json(message)

    async def result(self, msg_id: int, result: object = None) -> None:
        """Send a successful result."""
        await self.send({"id": msg_id, "type": "result", "success": True, "result": result})

    async def error(self, msg_id: int | None, err: StackHubError) -> None:
        """Send an error result with a code and a message."""
        await self.send({"id": msg_id, "type": "result", "success": False,
                         **body(err.code, err.message, err.details)})

    async def subscribe(self, raw: dict[str, Any]) -> None:
        """Handle ``subscribe``: stream matching events tagged with the request id."""
        req = Subscribe.model_validate(raw)
        if req.topic not in TOPICS:
            raise Invalid(f"unknown topic {req.topic!r}; topics: {', '.join(sorted(TOPICS))}")
        if req.id in self.subs:
            raise Invalid(f"id {req.id} is already used by a subscription")
        self.check_subscription(req)

        def matches(event: Event) -> bool:
            return event.topic == req.topic and (req.key is None or event.key == req.key) \
                and (event.topic in SHARED_TOPICS or self.visible(event.key))  # grants: per event

        sub = self.services.bus.subscribe(matches)

        async def pump() -> None:
            while True:
                event = await sub.queue.get()
                try:
                    await self.send({"id": req.id, "type": "event", "event": event.as_dict()})
                except (RuntimeError, WebSocketDisconnect):
                    return  # the socket closed (for example at logout)

        self.subs[req.id] = (sub, asyncio.create_task(metrics.hold(self.ws.app, req.topic, pump())))
        await self.result(req.id)

    async def unsubscribe(self, raw: dict[str, Any]) -> None:
        """Handle ``unsubscribe``: stop a subscription by its id."""
        msg_id = int(raw["id"])
        target = int(raw.get("subscription", -1))
        entry = self.subs.pop(target, None)
        if entry is None:
            raise NotFound(f"no subscription {target}")
        self.services.bus.unsubscribe(entry[0])
        entry[1].cancel()
        await self.result(msg_id)

    async def ping(self, raw: dict[str, Any]) -> None:
        """Handle ``ping``."""
        await self.send({"id": int(raw["id"]), "type": "pong"})

    def close(self) -> None:
        """Drop every subscription."""
        for sub, task in self.subs.values():
            self.services.bus.unsubscribe(sub)
            task.cancel()
        self.subs.clear()


Handler = Callable[[Connection, dict[str, Any]], Awaitable[None]]
COMMANDS: dict[str, Handler] = {
    "subscribe": Connection.subscribe,
    "unsubscribe": Connection.unsubscribe,
    "ping": Connection.ping,
}


@router.websocket("/api/ws")
async def websocket(ws: WebSocket) -> None:
    """Sign in through the socket guard, then serve subscribe/unsubscribe/ping requests."""
    async with guarded_socket(ws) as session:
        if session is None:
            return
        conn = Connection(ws, session.services, session.principal)
        try:
            await _serve(ws, session, conn)
        except (RuntimeError, ValueError):
            pass
        finally:
            conn.close()


async def _serve(ws: WebSocket, session: GuardedSocket, conn: Connection) -> None:
    """Answer requests until the client leaves or its access ends (checked per request)."""
    while True:
        raw = await ws.receive_json()
        if not await session.ensure_allowed():
            return
        msg_id = raw.get("id") if isinstance(raw, dict) else None
        try:
            if not isinstance(raw, dict) or not isinstance(msg_id, int):
                raise Invalid("every request needs an integer id and a type")
            handler = COMMANDS.get(str(raw.get("type")))
            if handler is None:
                raise Invalid(f"unknown request type {raw.get('type')!r}")
            await handler(conn, raw)
        except ValidationError as err:
            await conn.error(msg_id, Invalid(str(err.errors()[0]["msg"])))
        except StackHubError as err:
            await conn.error(msg_id, err)
