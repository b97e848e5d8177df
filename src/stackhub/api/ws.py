"""The one websocket protocol: requests with id and type, replies and events carry the id."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ValidationError

from stackhub.api.deps import Principal, authenticate_token
from stackhub.api.errors import body
from stackhub.errors import Invalid, NotFound, StackHubError, Unauthorized
from stackhub.events import Event, Subscription
from stackhub.services import Services
from stackhub.system import metrics

router = APIRouter()
AUTH_TIMEOUT = 10.0
TOPICS = {"operation", "instance", "metrics"}


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

        def matches(event: Event) -> bool:
            return event.topic == req.topic and (req.key is None or event.key == req.key)

        sub = self.services.bus.subscribe(matches)

        async def pump() -> None:
            while True:
                event = await sub.queue.get()
                await self.send({"id": req.id, "type": "event", "event": event.as_dict()})

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


def _header_token(ws: WebSocket) -> str | None:
    header = ws.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token else None


async def _authenticate(ws: WebSocket, services: Services) -> Principal:
    token = _header_token(ws)
    if token is None:
        # browsers cannot set headers: the first message may carry the token
        with contextlib.suppress(TimeoutError):
            first = await asyncio.wait_for(ws.receive_json(), AUTH_TIMEOUT)
            if isinstance(first, dict) and first.get("type") == "auth":
                token = str(first.get("token", ""))
    return authenticate_token(services, token)


@router.websocket("/api/ws")
async def websocket(ws: WebSocket) -> None:
    """Authenticate, then serve subscribe/unsubscribe/ping requests."""
    services: Services = ws.app.state.services
    await ws.accept()
    try:
        principal = await _authenticate(ws, services)
    except Unauthorized as err:
        await ws.send_json({"id": None, "type": "auth_invalid",
                            **body(err.code, err.message)})
        await ws.close(code=4401)
        return
    conn = Connection(ws, services, principal)
    await conn.send({"type": "auth_ok"})
    try:
        while True:
            raw = await ws.receive_json()
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
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        conn.close()
