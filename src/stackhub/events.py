"""Carry progress and state-change events from services to subscribers (websocket, CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

QUEUE_LIMIT = 1000


@dataclass
class Event:
    """One event: a topic like ``operation`` or ``instance``, a key, and data."""

    topic: str
    key: str
    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the event as plain data for the wire."""
        return {"topic": self.topic, "key": self.key, "kind": self.kind, "data": self.data}


Matcher = Callable[[Event], bool]


@dataclass
class Subscription:
    """A subscriber's queue and filter."""

    id: int
    matches: Matcher
    queue: asyncio.Queue[Event]


class EventBus:
    """An in-process publish/subscribe bus, safe to publish from worker threads."""

    def __init__(self) -> None:
        """Start with no subscribers."""
        self._subs: dict[int, Subscription] = {}
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Remember the event loop that owns the subscriber queues."""
        self._loop = loop

    def subscribe(self, matches: Matcher) -> Subscription:
        """Add a subscriber receiving events for which `matches` is true."""
        sub = Subscription(next(self._ids), matches, asyncio.Queue(QUEUE_LIMIT))
        self._subs[sub.id] = sub
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Remove a subscriber."""
        self._subs.pop(sub.id, None)

    def _deliver(self, event: Event) -> None:
        for sub in list(self._subs.values()):
            if sub.matches(event):
                if sub.queue.full():  # a slow consumer loses its oldest events, not the bus
                    with contextlib.suppress(asyncio.QueueEmpty):
                        sub.queue.get_nowait()
                sub.queue.put_nowait(event)

    def publish(self, event: Event) -> None:
        """Send an event to matching subscribers, from any thread."""
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._deliver(event)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._deliver, event)
