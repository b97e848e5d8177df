"""Keep a cache of instance containers, fed by the engine's event stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import defaultdict

from stackhub import labels
from stackhub.adapters.engine import ContainerInfo, Engine
from stackhub.apps.models import InstanceStatus
from stackhub.errors import StackHubError
from stackhub.events import Event, EventBus

log = logging.getLogger(__name__)
_BUSY = {InstanceStatus.INSTALLING, InstanceStatus.REMOVING, InstanceStatus.FAILED,
         InstanceStatus.INTERRUPTED}


def _completed(container: ContainerInfo) -> bool:
    """Tell whether a container is a one-shot job that exited successfully."""
    return container.state == "exited" and container.status.startswith("Exited (0)")


def derive(record_status: str, containers: list[ContainerInfo]) -> InstanceStatus:
    """Combine the journaled status with what the engine says."""
    status = InstanceStatus(record_status)
    if status in _BUSY:
        return status
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


class StatusCache:
    """Containers by instance, refreshed at start and on engine events only."""

    def __init__(self, engine: Engine, bus: EventBus) -> None:
        """Start empty; call start() to fill and follow the engine."""
        self.engine = engine
        self.bus = bus
        self.by_instance: dict[str, list[ContainerInfo]] = {}
        self.engine_ok = False
        self._stop = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self.refreshes = 0

    def containers(self, instance: str) -> list[ContainerInfo]:
        """Return the cached containers of one instance."""
        return self.by_instance.get(instance, [])

    def refresh(self) -> None:
        """Reload every StackHub container from the engine in one call."""
        grouped: dict[str, list[ContainerInfo]] = defaultdict(list)
        for container in self.engine.containers():
            if container.instance and container.project == labels.project_name(
                    container.instance):
                grouped[container.instance].append(container)
        self.refreshes += 1
        changed = {k for k in set(grouped) | set(self.by_instance)
                   if grouped.get(k) != self.by_instance.get(k)}
        self.by_instance = dict(grouped)
        self.engine_ok = True
        for name in changed:
            self.bus.publish(Event("instance", name, "containers",
                                   {"containers": [c.model_dump() for c in grouped.get(name, [])]}))

    async def start(self) -> None:
        """Fill the cache and follow the engine's events in a background thread."""
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        """Stop following the engine."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _follow(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(self.refresh)
                await asyncio.to_thread(self._pump, loop)
            except StackHubError as err:
                self.engine_ok = False
                log.warning("engine events unavailable: %s", err.message)
            await asyncio.sleep(2)

    def _pump(self, loop: asyncio.AbstractEventLoop) -> None:
        """Refresh on every container event until stopped (runs in a worker thread)."""
        for _event in self.engine.events(self._stop):
            # one list call per event keeps the cache exact; events are rare and cheap
            self.refresh()
