"""Keep app containers reachable from other machines only through their published ports."""

# Adds `adapters.firewall`'s rule for StackHub's subnet pool at server start and again each
# time the engine comes back (Docker makes DOCKER-USER when it starts; a reboot empties the
# table). STACKHUB_FIREWALL=0 leaves the host's packet filter alone (a firewall managed by
# other means). A failure is logged and shown by `reason`; it never stops the server.

from __future__ import annotations

import asyncio
import contextlib
import logging

from stackhub.adapters.firewall import Firewall
from stackhub.config import SubnetPool, firewall_enabled
from stackhub.events import EventBus, Subscription

log = logging.getLogger(__name__)


class PoolFence:
    """Apply the pool's firewall rule at start and whenever the engine is up again."""

    def __init__(self, bus: EventBus, pool: SubnetPool, firewall: Firewall | None = None,
                 *, enabled: bool | None = None) -> None:
        """Follow `bus`; `enabled` defaults to STACKHUB_FIREWALL (on unless ``0``)."""
        self.bus = bus
        self.pool = pool
        self.firewall = firewall or Firewall()
        self.enabled = enabled if enabled is not None else firewall_enabled()
        self.reason: str | None = None
        """Why the rule is not in place (None: it is, or the fence is off)."""
        self._task: asyncio.Task[None] | None = None
        self._sub: Subscription | None = None

    async def apply(self) -> None:
        """Put the rule in place (in a thread: iptables may wait for its lock)."""
        if not self.enabled:
            return
        why = await asyncio.to_thread(self.firewall.guard, self.pool.network)
        if why != self.reason:
            if why is None:
                log.info("firewall: only published ports reach %s from other machines",
                         self.pool.network)
            else:
                log.warning("firewall: app containers in %s stay reachable from machines that "
                            "route to them: %s", self.pool.network, why)
        self.reason = why

    async def start(self) -> None:
        """Apply now, then after each engine start."""
        if not self.enabled:
            return
        self._sub = self.bus.subscribe(lambda e: e.topic == "engine" and e.kind == "up")
        await self.apply()
        self._task = asyncio.create_task(self._follow(self._sub), name="pool-fence")

    async def _follow(self, sub: Subscription) -> None:
        while True:
            await sub.queue.get()
            await self.apply()

    async def stop(self) -> None:
        """Stop following the engine (the rule stays: it protects with StackHub down too)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sub is not None:
            self.bus.unsubscribe(self._sub)
            self._sub = None
