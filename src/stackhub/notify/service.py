"""The notify domain's entry points: raise and resolve notifications (deduplicated by key),
the bell's list and read marks, the delivery channels and their test.

Producers reach it through `notify()`/`resolve()` (or not at all: it follows the event bus's
`engine` and `operation` topics itself, and `watch.Watcher` polls what has no event). Every
change is published on the bus's `notification` topic (no content: readers re-read the list,
which is filtered for them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stackhub.auth.models import Principal
from stackhub.errors import NotFound
from stackhub.events import Event, EventBus, Subscription
from stackhub.notify.channels import ChannelStore
from stackhub.notify.delivery import Deliveries
from stackhub.notify.models import (
    ChannelKind,
    ChannelRead,
    EmailSettings,
    Kind,
    NotificationList,
    NotificationRead,
    Severity,
    TestResult,
    WebhookSettings,
)
from stackhub.notify.store import Notice, NotificationStore, Stored
from stackhub.state.db import Database, now

log = logging.getLogger(__name__)
TOPIC = "notification"
KEY = "notifications"
QUIET_RESOLUTIONS = {Kind.UPDATE_AVAILABLE, Kind.TEST}  # resolving these is not delivered
INSTANCE_PREFIXES = ("update:", "update_failed:", "backup_failed:", "backup_missing:",
                     "unhealthy:", "auto_update:", "recovery_failed:")
# automatic update results worth telling (up-to-date is not news)
AUTO_RESULTS = {"updated": Severity.INFO, "skipped": Severity.INFO,
                "rolled-back": Severity.ERROR, "failed": Severity.ERROR}

__all__ = ["Kind", "Notice", "NotifyService", "Severity"]


class NotifyService:
    """Notifications of one server."""

    def __init__(self, *, db: Database, secrets_dir: Path, bus: EventBus,
                 may_see: Callable[[Principal, str], bool],
                 console_url: Callable[[], str] = lambda: "",
                 deliveries: Deliveries | None = None) -> None:
        """Keep notifications in `db`; `may_see(principal, instance)` applies members' grants."""
        self.store = NotificationStore(db)
        self.channels = ChannelStore(db, secrets_dir)
        self.bus = bus
        self.may_see = may_see
        self.console_url = console_url
        self.deliveries = deliveries or Deliveries(self.channels)
        self._sub: Subscription | None = None
        self._listener: asyncio.Task[None] | None = None

    # -- producers ----------------------------------------------------------------------------
    def notify(self, notice: Notice) -> NotificationRead | None:
        """Raise a notice: new (or changed) ones are published and delivered; one already open
        with the same key and params changes nothing (None)."""
        stored, changed = self.store.put(notice)
        if not changed:
            return None
        self._changed(stored)
        return stored.read_model(False)

    def resolve(self, key: str) -> bool:
        """Resolve the open notification of a key; say whether there was one."""
        stored = self.store.resolve(key)
        if stored is None:
            return False
        self._changed(stored, deliver=stored.kind not in QUIET_RESOLUTIONS)
        return True

    def resolve_missing(self, prefix: str, still: set[str]) -> int:
        """Resolve every open key starting with `prefix` that is not in `still`."""
        gone = self.store.open_keys(prefix) - still
        return sum(self.resolve(k) for k in sorted(gone))

    def _changed(self, stored: Stored, *, deliver: bool = True) -> None:
        self.bus.publish(Event(TOPIC, KEY, "changed", {"id": stored.id}))
        if deliver:
            self.deliveries.submit(self.payload(stored))

    def payload(self, stored: Stored) -> dict[str, Any]:
        """Return what webhooks receive (and e-mails are written from)."""
        read = stored.read_model(False)
        base = self.console_url().rstrip("/")
        return {"id": read.id, "kind": read.kind.value, "severity": read.severity.value,
                "text": read.text, "params": read.params, "link": read.link,
                "url": base + read.link if base else None, "instance": read.instance,
                "resolved": read.resolved, "created_at": read.created_at,
                "updated_at": read.updated_at}

    # -- the bell -----------------------------------------------------------------------------
    def _visible(self, principal: Principal) -> Callable[[Stored], bool]:
        def check(stored: Stored) -> bool:
            if principal.is_admin:
                return True
            if stored.admin_only:
                return False
            return stored.instance is None or self.may_see(principal, stored.instance)
        return check

    def listing(self, principal: Principal, *, unread_only: bool = False,
             limit: int = 100) -> NotificationList:
        """Return the caller's notifications, newest first, and the unread count."""
        found = self.store.visible(principal.name, self._visible(principal))
        unread = sum(1 for _, read in found if not read)
        items = [s.read_model(read) for s, read in found if not (unread_only and read)]
        return NotificationList(items=items[:limit], unread=unread)

    def mark_read(self, principal: Principal, ident: int) -> NotificationRead:
        """Mark one notification read for the caller (NotFound if they may not see it)."""
        stored = self.store.get(ident)
        if not self._visible(principal)(stored):
            raise NotFound(f"no notification {ident}")
        self.store.mark_read(principal.name, [ident])
        self.bus.publish(Event(TOPIC, KEY, "read", {}))
        return stored.read_model(True)

    def mark_all_read(self, principal: Principal) -> int:
        """Mark every notification the caller sees read; return how many were unread."""
        found = self.store.visible(principal.name, self._visible(principal))
        marked = self.store.mark_read(principal.name, [s.id for s, read in found if not read])
        if marked:
            self.bus.publish(Event(TOPIC, KEY, "read", {}))
        return marked

    # -- channels -----------------------------------------------------------------------------
    def list_channels(self) -> list[ChannelRead]:
        """Return both channels (configured or not); secrets are never included."""
        found: list[ChannelRead] = []
        for kind in ChannelKind:
            channel = self.channels.find(kind)
            found.append(channel.read() if channel else
                         ChannelRead(kind=kind, enabled=False, configured=False))
        return found

    def set_webhook(self, request: WebhookSettings) -> ChannelRead:
        """Configure the webhook (URL checked first); a new secret is shown in this answer only."""
        channel, new = self.channels.set_webhook(request)
        return channel.read(show_secret=new)

    def set_email(self, request: EmailSettings) -> ChannelRead:
        """Configure e-mail delivery (the password is kept when not given)."""
        return self.channels.set_email(request).read()

    def remove_channel(self, kind: ChannelKind) -> None:
        """Forget a channel and its secret."""
        self.channels.remove(kind)

    async def test(self, kind: ChannelKind) -> TestResult:
        """Send a test notification through one channel now (once) and report the outcome."""
        channel = self.channels.get(kind)
        stamp = now()
        stored = Stored(id=0, kind=Kind.TEST, key="test", severity=Severity.INFO, params={},
                        link="/settings/notifications", instance=None, admin_only=True,
                        created_at=stamp, updated_at=stamp, resolved_at=None)
        return await self.deliveries.test(channel, self.payload(stored))

    # -- events -------------------------------------------------------------------------------
    def handle(self, event: Event) -> None:
        """Turn a bus event into notifications (engine down/up, failed backups and updates)."""
        if event.topic == "engine":
            if event.kind == "down":
                self.notify(Notice(Kind.ENGINE_UNREACHABLE, "engine",
                                   {"error": str(event.data.get("error") or "unreachable")},
                                   "/", Severity.ERROR, admin_only=False))
            elif event.kind == "up":
                self.resolve("engine")
            return
        if event.topic == "auto-update":
            self._auto_update(event)
            return
        if event.topic != "operation" or event.kind != "finished":
            return
        kind, state = event.data.get("op_kind"), event.data.get("state")
        name = str(event.data.get("instance") or event.key)
        error = str(event.data.get("error") or "")[:500]
        if kind == "backup" and state == "failed":
            self.notify(Notice(Kind.BACKUP_FAILED, f"backup_failed:{name}",
                               {"instance": name, "error": error}, "/backups", Severity.ERROR,
                               instance=name))
        elif kind == "backup" and state == "succeeded":
            self.resolve(f"backup_failed:{name}")
            self.resolve(f"backup_missing:{name}")
        elif kind == "update" and state == "failed":
            self.notify(Notice(Kind.UPDATE_FAILED, f"update_failed:{name}",
                               {"instance": name, "error": error}, f"/apps/{name}",
                               Severity.ERROR, instance=name))
        elif kind == "update" and state == "succeeded":
            self.resolve(f"update_failed:{name}")
            self.resolve(f"update:{name}")
        elif kind == "restore" and state == "succeeded":  # brought back by hand at last
            self.resolve(f"recovery_failed:{name}")
        elif kind == "remove" and state == "succeeded":
            for prefix in INSTANCE_PREFIXES:
                self.resolve(prefix + name)

    def _auto_update(self, event: Event) -> None:
        """Tell each automatic update's result (updated, held back, rolled back, failed)."""
        name = str(event.data.get("instance") or event.key)
        result = str(event.data.get("result") or "")
        severity = AUTO_RESULTS.get(result)
        if severity is None:
            return
        self.notify(Notice(Kind.AUTO_UPDATE, f"auto_update:{name}", {
            "instance": name, "result": result,
            "message": str(event.data.get("message") or "")[:500]},
            f"/apps/{name}", severity, instance=name, renotify=True))
        if result == "updated":
            self.resolve(f"update_failed:{name}")
            self.resolve(f"update:{name}")

    def start(self) -> None:
        """Follow the bus and start delivering (the server's lifespan)."""
        self.deliveries.start()
        self._sub = self.bus.subscribe(lambda e: e.topic in ("engine", "auto-update") or (
            e.topic == "operation" and e.kind == "finished"))
        self._listener = asyncio.create_task(self._listen(self._sub), name="notify-listener")

    async def _listen(self, sub: Subscription) -> None:
        while True:
            event = await sub.queue.get()
            try:
                await asyncio.to_thread(self.handle, event)
            except Exception:
                log.exception("cannot record a notification for %s/%s", event.topic, event.kind)

    async def stop(self) -> None:
        """Stop following the bus and delivering."""
        if self._sub is not None:
            self.bus.unsubscribe(self._sub)
            self._sub = None
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self.deliveries.stop()
