"""Keep a cache of instance containers, fed by the engine's event stream, and the engine's state.

The engine is up once a container list succeeds, down as soon as a list or the event stream
fails and an immediate re-list fails too, or when two pings in a row get no answer within
`PROBE_TIMEOUT` (a hung dockerd keeps its socket open: connections are accepted, never
answered, and lists would wait the adapter's long timeout); while down, instances read as
``unknown``, actions are refused before anything is journaled, and the cache re-lists with a
backoff of at most `BACKOFF_MAX` seconds. Every change of the engine's state is published on
the ``engine`` topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime

from stackhub import labels
from stackhub.adapters.engine import ContainerInfo, Engine
from stackhub.apps.models import EngineState, InstanceStatus
from stackhub.errors import EngineUnavailable, StackHubError
from stackhub.events import Event, EventBus

log = logging.getLogger(__name__)
_BUSY = {InstanceStatus.INSTALLING, InstanceStatus.REMOVING, InstanceStatus.FAILED,
         InstanceStatus.INTERRUPTED}
BACKOFF_MIN = 0.1
BACKOFF_MAX = 1.0
"""Seconds between re-lists while the engine is down: doubling from BACKOFF_MIN, capped here so
statuses are exact within about a second of the engine answering again."""
STREAM_RETRY = 0.05
"""Pause before re-listing after the event stream ended with an error (a stream that keeps
failing within a second backs off like a down engine)."""
ENGINE_UNREACHABLE = "engine unreachable"
"""The status reason of an instance whose status is unknown because the engine is down."""
PROBE_INTERVAL = 0.25
"""Seconds between pings of the engine (``/_ping``, one cheap request each)."""
PROBE_TIMEOUT = 0.5
"""A ping unanswered this long is a miss; two misses in a row mark the engine down, so a hung
engine is reported within PROBE_INTERVAL + 2 * PROBE_TIMEOUT (1.25 s). Operations keep the
adapter's long timeout: only the status path is this impatient."""


def _completed(container: ContainerInfo) -> bool:
    """Tell whether a container is a one-shot job that exited successfully."""
    return container.state == "exited" and container.status.startswith("Exited (0)")


def derive(record_status: str, containers: list[ContainerInfo], *,
           engine: bool = True) -> InstanceStatus:
    """Combine the journaled status with what the engine says (unknown if it cannot say)."""
    status = InstanceStatus(record_status)
    if status in _BUSY:
        return status
    if not engine:
        return InstanceStatus.UNKNOWN
    if not containers:
        return InstanceStatus.MISSING
    running = [c for c in containers if c.state == "running"]
    if running:  # one-shot setup containers that finished cleanly are not missing parts
        containers = [c for c in containers if not _completed(c)]
    if not running:
        return InstanceStatus.STOPPED
    if len(running) < len(containers):
        return InstanceStatus.PARTIAL
    if any(c.health == "unhealthy" for c in running):
        return InstanceStatus.UNHEALTHY
    if any(c.health == "starting" for c in running):
        return InstanceStatus.STARTING
    return InstanceStatus.RUNNING


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class StatusCache:
    """Containers by instance, refreshed at start and on engine events only; the engine's state."""

    def __init__(self, engine: Engine, bus: EventBus) -> None:
        """Start empty; call start() to fill and follow the engine."""
        self.engine = engine
        self.bus = bus
        self.by_instance: dict[str, list[ContainerInfo]] = {}
        self.engine_ok = False
        self.engine_error: str | None = None
        self.engine_since: float | None = None
        self.outages = 0
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self._watchdog: threading.Thread | None = None
        self.refreshes = 0

    # -- the engine's state -----------------------------------------------------------------
    @property
    def engine_down(self) -> bool:
        """Tell whether the engine is known to be unreachable right now."""
        return self.engine_error is not None

    def engine_state(self) -> EngineState:
        """Return the engine's state as published: engine, error, since (ISO time or None)."""
        since = self.engine_since
        return EngineState(engine=self.engine_ok, error=self.engine_error,
                           since=None if since is None else _iso(since))

    def check_engine(self) -> None:
        """Raise EngineUnavailable at once if the engine is known to be down."""
        error, since = self.engine_error, self.engine_since
        if error is not None:
            when = "" if since is None else f" since {_iso(since)}"
            raise EngineUnavailable(f"the Docker engine is not reachable{when}; is dockerd "
                                    "running? Nothing was changed: try again once it answers",
                                    details={"since": None if since is None else _iso(since),
                                             "cause": error})

    def verify(self) -> bool:
        """Re-list now; return False if the engine does not answer (runs in a worker thread).

        While the engine is known down it is pinged first (at most PROBE_TIMEOUT), so a request
        made while it hangs fails at once rather than after the long list timeout.
        """
        try:
            if self.engine_down:
                self.engine.probe(PROBE_TIMEOUT)
            self.refresh()
        except EngineUnavailable:
            return False
        except StackHubError:
            return True
        return True

    def _mark(self, ok: bool, error: str | None = None) -> None:
        with self._state_lock:
            changed = ok != self.engine_ok or (not ok and self.engine_error is None)
            if not changed:
                return
            first = self.engine_since is None  # the first list publishes every instance anyway
            self.engine_ok = ok
            self.engine_error = None if ok else (error or "unreachable")
            self.engine_since = time.time()
            if not ok:
                self.outages += 1
            state = self.engine_state()
        if ok:
            log.warning("the Docker engine answers again")
        else:
            log.warning("the Docker engine is unreachable: %s", error)
        self.bus.publish(Event("engine", "engine", "up" if ok else "down", state.model_dump()))
        # every instance's status changes with it (unknown, or exact again), containers or not
        for name in [] if first else list(self.by_instance):
            self.bus.publish(Event("instance", name, "engine", state.model_dump()))

    # -- containers ---------------------------------------------------------------------------
    def containers(self, instance: str) -> list[ContainerInfo]:
        """Return the cached containers of one instance."""
        return self.by_instance.get(instance, [])

    def refresh(self) -> None:
        """Reload every StackHub container from the engine in one call."""
        try:
            listed = self.engine.containers()
        except EngineUnavailable as err:
            self._mark(False, err.message)
            raise
        grouped: dict[str, list[ContainerInfo]] = defaultdict(list)
        for container in listed:
            if container.instance and container.project == labels.project_name(
                    container.instance):
                grouped[container.instance].append(container)
        self.refreshes += 1
        changed = {k for k in set(grouped) | set(self.by_instance)
                   if grouped.get(k) != self.by_instance.get(k)}
        self.by_instance = dict(grouped)
        self._mark(True)
        for name in changed:
            self.bus.publish(Event("instance", name, "containers",
                                   {"containers": [c.model_dump() for c in grouped.get(name, [])]}))

    async def start(self) -> None:
        """Fill the cache and follow the engine's events; ping it in a thread of its own."""
        self._task = asyncio.create_task(self._follow())
        self._watchdog = threading.Thread(target=self._watch, name="engine-probe", daemon=True)
        self._watchdog.start()

    async def stop(self) -> None:
        """Stop following the engine."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _follow(self) -> None:
        """List, then follow events; on a failure re-list at once, then back off up to 1 s."""
        loop = asyncio.get_running_loop()
        delay = 0.0
        quick = 0  # event streams in a row that failed within a second while lists worked
        while not self._stop.is_set():
            if delay:
                await asyncio.sleep(delay)
            try:
                await asyncio.to_thread(self.refresh)
            except StackHubError as err:
                if not isinstance(err, EngineUnavailable):
                    log.warning("cannot list the engine's containers: %s", err.message)
                delay, quick = min(BACKOFF_MAX, max(BACKOFF_MIN, delay * 2)), 0
                continue
            began = time.monotonic()
            try:
                await asyncio.to_thread(self._pump, loop)
            except StackHubError as err:
                log.warning("engine events unavailable: %s", err.message)
            quick = quick + 1 if time.monotonic() - began < 1.0 else 0
            delay = min(BACKOFF_MAX, STREAM_RETRY * 2 ** max(0, quick - 1))

    def _miss(self) -> str | None:
        """Ping twice if need be; return why the engine did not answer either, or None."""
        error = None
        for _ in range(2):
            try:
                self.engine.probe(PROBE_TIMEOUT)
            except EngineUnavailable as err:
                error = err.message
            else:
                return None
            if self._stop.is_set():
                return None
        return error

    def _watch(self) -> None:
        """Ping the engine every PROBE_INTERVAL; mark it down on two misses, re-list when it
        answers again after an outage (runs in its own thread until stopped)."""
        while not self._stop.wait(PROBE_INTERVAL):
            error = self._miss()
            if self._stop.is_set():
                return
            if error is not None:
                if not self.engine_down:
                    self._mark(False, error)
            elif self.engine_down:
                # the event follower may still wait on a request the hung engine accepted
                with contextlib.suppress(StackHubError):
                    self.refresh()

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        """Refresh on every container event until stopped (runs in a worker thread)."""
        for _event in self.engine.events(self._stop):
            # one list call per event keeps the cache exact; events are rare and cheap
            self.refresh()
