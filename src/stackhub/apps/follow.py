"""Follow one operation as JSON lines: its state now, its live events, then its final record.

This is the HTTP alternative to the websocket for clients that follow a single operation (the
CLI): no websocket library to load and no subscription to set up before starting. Nothing is
lost between starting the operation and opening the stream, because the first line is the
operation's journaled state, read after the bus subscription exists.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

from pydantic import BaseModel

from stackhub.apps.models import OperationRead, OperationState
from stackhub.events import Event, EventBus

QUIET_RECHECK = 5.0
"""Seconds without events after which the journal is read again and a ``ping`` line is sent
(so clients can tell a quiet operation from a dead connection)."""


def _line(kind: str, data: object) -> str:
    return json.dumps({"kind": kind, "data": data}, separators=(",", ":")) + "\n"


Load = Callable[[str], OperationRead]
Describe = Callable[[str], BaseModel | None]
Pulls = Callable[[str], list[dict[str, object]]]


def follow_operation(bus: EventBus, load: Load, describe: Describe, pulls: Pulls,
                     op_id: str) -> AsyncIterator[str]:
    """Return the stream of `op_id`; raises NotFound (from `load`) before anything is sent.

    After the state line come the last ``pull`` event of each image pulled so far (`pulls`),
    so a client that connects mid-pull, or after a fast one, still draws its bars. The last
    line, ``result``, holds the operation's record and, when it succeeded, what `describe`
    says about its instance now (None once removed). The bus subscription exists only while
    the stream runs, so a client that leaves before reading leaves nothing behind.
    """
    load(op_id)
    return _stream(bus, load, describe, pulls, op_id)


async def _stream(bus: EventBus, load: Load, describe: Describe, pulls: Pulls,
                  op_id: str) -> AsyncIterator[str]:
    """Yield the state line, the events, and the final record once the journal says it ended."""
    sub = bus.subscribe(lambda e: e.topic == "operation" and e.data.get("operation") == op_id)
    try:
        # Events are published on this event loop, so between subscribing and these reads
        # (no await) none can slip by: what follows is exactly what the queue will not hold.
        op, earlier = load(op_id), pulls(op_id)
        yield _line("state", {"operation": op.id, "op_kind": op.kind, "step": op.step,
                              "progress": op.progress})
        for event_data in earlier:
            yield _line("pull", event_data)
        while op.state == OperationState.RUNNING:
            try:
                event: Event = await asyncio.wait_for(sub.queue.get(), QUIET_RECHECK)
            except TimeoutError:
                op = load(op.id)
                yield _line("ping", {})
                continue
            yield _line(event.kind, event.data)
            if event.kind == "finished":
                op = load(op.id)  # the journal is written before "finished" is published
        view = describe(op.instance) if op.state == OperationState.SUCCEEDED else None
        yield _line("result", {"operation": op.model_dump(mode="json"),
                               "instance": None if view is None else view.model_dump(mode="json")})
    finally:
        bus.unsubscribe(sub)
