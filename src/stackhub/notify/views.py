"""HTTP routes of the notify domain: the bell (every signed-in user, filtered for members)
and the delivery channels (admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from stackhub.api.deps import AuditDep, PrincipalDep, ServicesDep
from stackhub.notify.models import (
    ChannelKind,
    ChannelRead,
    EmailSettings,
    NotificationList,
    NotificationRead,
    ReadAllResult,
    TestResult,
    WebhookSettings,
)

router = APIRouter(prefix="/notifications", tags=["notifications"])
KindPath = Annotated[ChannelKind, Path(description="webhook or email")]


@router.get("", response_model=NotificationList, summary="List notifications")
async def list_notifications(
        services: ServicesDep, principal: PrincipalDep,
        unread: Annotated[bool, Query(description="Only unread ones.")] = False,
        limit: Annotated[int, Query(ge=1, le=500)] = 100) -> NotificationList:
    """Return the caller's notifications, newest first, with the unread count (members see
    only those about instances granted to them and the engine's state)."""
    return services.notify.listing(principal, unread_only=unread, limit=limit)


@router.post("/read-all", response_model=ReadAllResult, summary="Mark all read")
async def read_all(services: ServicesDep, principal: PrincipalDep) -> ReadAllResult:
    """Mark every notification the caller sees read (for the caller only)."""
    return ReadAllResult(marked=services.notify.mark_all_read(principal))


@router.post("/{ident}/read", response_model=NotificationRead, summary="Mark one read")
async def read_one(ident: Annotated[int, Path(ge=1, le=2**62)], services: ServicesDep,
                   principal: PrincipalDep) -> NotificationRead:
    """Mark one notification read for the caller."""
    return services.notify.mark_read(principal, ident)


@router.get("/channels", response_model=list[ChannelRead], summary="List delivery channels")
async def list_channels(services: ServicesDep) -> list[ChannelRead]:
    """Return the webhook and e-mail channels (secrets and passwords are never shown)."""
    return services.notify.list_channels()


@router.put("/channels/webhook", response_model=ChannelRead, summary="Configure the webhook")
async def set_webhook(request: WebhookSettings, services: ServicesDep,
                      audit: AuditDep) -> ChannelRead:
    """POST every notification as signed JSON to an http(s) URL; the signing secret is made the
    first time (or with rotate_secret) and shown in this answer only."""
    read = services.notify.set_webhook(request)
    audit("notify.channel", "webhook", url=read.url, enabled=read.enabled,
          new_secret=read.secret is not None)
    return read


@router.put("/channels/email", response_model=ChannelRead, summary="Configure e-mail")
async def set_email(request: EmailSettings, services: ServicesDep,
                    audit: AuditDep) -> ChannelRead:
    """Send every notification by e-mail through an SMTP server."""
    read = services.notify.set_email(request)
    audit("notify.channel", "email", host=read.host, enabled=read.enabled)
    return read


@router.delete("/channels/{kind}", status_code=204, summary="Remove a channel")
async def remove_channel(kind: KindPath, services: ServicesDep, audit: AuditDep) -> Response:
    """Forget a channel and its secret."""
    services.notify.remove_channel(kind)
    audit("notify.channel.remove", kind.value)
    return Response(status_code=204)


@router.post("/channels/{kind}/test", response_model=TestResult, summary="Send a test")
async def test_channel(kind: KindPath, services: ServicesDep) -> TestResult:
    """Send a test notification through the channel now (one try) and say how it went."""
    return await services.notify.test(kind)
