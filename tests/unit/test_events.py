"""The in-process event bus."""

from __future__ import annotations

import asyncio
import threading

from stackhub import events
from stackhub.events import Event, EventBus


def test_event_as_dict() -> None:
    event = Event("operation", "blog", "step", {"step": "pull"})
    assert event.as_dict() == {"topic": "operation", "key": "blog", "kind": "step",
                               "data": {"step": "pull"}}


def test_publish_before_bind_is_dropped() -> None:
    bus = EventBus()
    sub = bus.subscribe(lambda e: True)
    bus.publish(Event("operation", "blog", "step"))
    assert sub.queue.empty()


async def test_subscribers_get_matching_events_in_order() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    blog = bus.subscribe(lambda e: e.key == "blog")
    every = bus.subscribe(lambda e: True)
    for key, kind in (("blog", "a"), ("wiki", "b"), ("blog", "c")):
        bus.publish(Event("operation", key, kind))
    assert [blog.queue.get_nowait().kind for _ in range(blog.queue.qsize())] == ["a", "c"]
    assert every.queue.qsize() == 3
    assert blog.id != every.id


async def test_unsubscribe_stops_delivery() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    sub = bus.subscribe(lambda e: True)
    bus.unsubscribe(sub)
    bus.unsubscribe(sub)  # twice is fine
    bus.publish(Event("operation", "blog", "x"))
    assert sub.queue.empty()


async def test_slow_consumer_loses_oldest_events() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    sub = bus.subscribe(lambda e: True)
    for index in range(events.QUEUE_LIMIT + 5):
        bus.publish(Event("operation", "blog", str(index)))
    assert sub.queue.qsize() == events.QUEUE_LIMIT
    assert sub.queue.get_nowait().kind == "5"


async def test_publish_from_a_worker_thread_lands_on_the_loop() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    sub = bus.subscribe(lambda e: True)
    delivered_on: list[int] = []
    original = bus._deliver

    def spy(event: Event) -> None:
        delivered_on.append(threading.get_ident())
        original(event)

    bus._deliver = spy  # type: ignore[method-assign]
    worker = threading.Thread(target=bus.publish, args=(Event("instance", "blog", "x"),))
    worker.start()
    worker.join()
    event = await asyncio.wait_for(sub.queue.get(), 1)
    assert event.kind == "x"
    assert delivered_on == [threading.get_ident()]


def test_publish_to_a_closed_loop_is_ignored() -> None:
    loop = asyncio.new_event_loop()
    bus = EventBus()
    bus.bind(loop)
    sub = bus.subscribe(lambda event: True)
    loop.close()
    assert bus.publish(Event("instance", "blog", "x")) is None  # no error
    assert sub.queue.empty()  # and nothing was delivered on a loop that is gone
