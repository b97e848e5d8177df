"""Deliveries: signed webhook POSTs with retries and backoff (httpx MockTransport), e-mail
retries (a fake mailer), a caller that never waits, the outcome recorded per channel."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from stackhub.events import EventBus
from stackhub.notify.delivery import SIGNATURE, Deliveries, DeliveryFailed
from stackhub.notify.models import ChannelKind, EmailSettings, Kind, WebhookSettings
from stackhub.notify.service import NotifyService
from stackhub.notify.store import Notice
from stackhub.state.db import Database


class Hook:
    """A webhook receiver inside httpx: answers from a script, records requests."""

    def __init__(self, *codes: int | Exception) -> None:
        self.codes = list(codes)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        code = self.codes.pop(0) if self.codes else 200
        if isinstance(code, Exception):
            raise code
        return httpx.Response(code)


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make(tmp_path: Path, hook: Hook | None = None, mailer: Any = None,
         sleeps: Sleeps | None = None) -> NotifyService:
    db = Database(tmp_path / "stackhub.db")
    service = NotifyService(db=db, secrets_dir=tmp_path / "secrets", bus=EventBus(),
                            may_see=lambda p, n: True,
                            console_url=lambda: "https://console.example.com")
    service.deliveries = Deliveries(
        service.channels, transport=httpx.MockTransport(hook or Hook()),
        mailer=mailer or (lambda *a: None), sleep=sleeps or Sleeps(), tries=4, backoff=1.0)
    return service


def failed(name: str) -> Notice:
    return Notice(Kind.BACKUP_FAILED, f"backup_failed:{name}",
                  {"instance": name, "error": "no space"}, "/backups", instance=name)


async def test_webhook_retries_with_backoff_and_signs(tmp_path: Path) -> None:
    hook, sleeps = Hook(503, httpx.ConnectError("refused"), 200), Sleeps()
    service = make(tmp_path, hook, sleeps=sleeps)
    secret = service.set_webhook(WebhookSettings(url="https://hooks.example.com/in")).secret
    assert secret
    service.deliveries.start()
    try:
        service.notify(failed("blog"))
        await service.deliveries.drain()
    finally:
        await service.deliveries.stop()
    assert len(hook.requests) == 3 and sleeps.delays == [1.0, 2.0]
    request = hook.requests[-1]
    body = request.content
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert request.headers[SIGNATURE] == expected
    payload = json.loads(body)
    assert payload["kind"] == "backup_failed" and payload["params"]["instance"] == "blog"
    assert payload["text"] == "The backup of blog failed: no space"
    assert payload["url"] == "https://console.example.com/backups"
    channel = service.channels.get(ChannelKind.WEBHOOK)
    assert channel.last_ok is True and channel.last_error is None


async def test_webhook_gives_up_after_the_tries_and_records_why(tmp_path: Path) -> None:
    hook, sleeps = Hook(500, 500, 500, 500, 500), Sleeps()
    service = make(tmp_path, hook, sleeps=sleeps)
    service.set_webhook(WebhookSettings(url="https://hooks.example.com/in"))
    service.deliveries.start()
    try:
        service.notify(failed("blog"))
        await service.deliveries.drain()
    finally:
        await service.deliveries.stop()
    assert len(hook.requests) == 4 and sleeps.delays == [1.0, 2.0, 4.0]
    channel = service.channels.get(ChannelKind.WEBHOOK)
    assert channel.last_ok is False
    assert channel.last_error == "https://hooks.example.com/in answered 500"


async def test_a_client_error_is_not_retried(tmp_path: Path) -> None:
    hook = Hook(404, 403)
    service = make(tmp_path, hook)
    service.set_webhook(WebhookSettings(url="https://hooks.example.com/in"))
    result = await service.test(ChannelKind.WEBHOOK)
    assert not result.ok and result.error == "https://hooks.example.com/in answered 404"
    error = await service.deliveries.send(service.channels.get(ChannelKind.WEBHOOK),
                                          {"kind": "test"}, tries=4)
    assert error == "https://hooks.example.com/in answered 403" and len(hook.requests) == 2


async def test_notify_never_waits_for_delivery(tmp_path: Path) -> None:
    gate = asyncio.Event()

    async def slow(delay: float) -> None:
        await gate.wait()
    service = make(tmp_path, Hook(503, 200))
    service.deliveries.sleep = slow
    service.set_webhook(WebhookSettings(url="https://hooks.example.com/in"))
    service.deliveries.start()
    try:
        began = time.monotonic()
        service.notify(failed("blog"))
        service.notify(failed("wiki"))
        assert time.monotonic() - began < 5  # no delivery: two writes (busy disk)
        await asyncio.sleep(0.05)  # both are being delivered, one waits for its retry
        gate.set()
        await service.deliveries.drain()
    finally:
        await service.deliveries.stop()


async def test_email_retries_then_sends(tmp_path: Path) -> None:
    sent: list[tuple[dict[str, Any], str | None, dict[str, Any]]] = []
    failures = [DeliveryFailed("421 try later")]

    def mailer(config: dict[str, Any], password: str | None, payload: dict[str, Any],
               timeout: float) -> None:
        if failures:
            raise failures.pop()
        sent.append((config, password, payload))
    sleeps = Sleeps()
    service = make(tmp_path, mailer=mailer, sleeps=sleeps)
    service.set_email(EmailSettings(host="smtp.example.com", sender="sh@example.com",
                                    recipients=["ops@example.com"], username="sh",
                                    password="pw"))
    service.deliveries.start()
    try:
        service.notify(failed("blog"))
        await service.deliveries.drain()
    finally:
        await service.deliveries.stop()
    assert sleeps.delays == [1.0] and len(sent) == 1
    config, password, payload = sent[0]
    assert password == "pw" and config["recipients"] == ["ops@example.com"]
    assert payload["kind"] == "backup_failed"


async def test_a_refused_password_is_not_retried(tmp_path: Path) -> None:
    calls: list[int] = []

    def mailer(*args: Any) -> None:
        calls.append(1)
        raise DeliveryFailed("the SMTP server refused the user name or password", retry=False)
    service = make(tmp_path, mailer=mailer)
    service.set_email(EmailSettings(host="smtp.example.com", sender="sh@example.com",
                                    recipients=["ops@example.com"]))
    error = await service.deliveries.send(service.channels.get(ChannelKind.EMAIL), {},
                                          tries=4)
    assert error and "refused" in error and calls == [1]


async def test_test_of_an_unconfigured_channel_is_not_found(tmp_path: Path) -> None:
    from stackhub.errors import NotFound

    service = make(tmp_path)
    with pytest.raises(NotFound):
        await service.test(ChannelKind.EMAIL)


def test_an_error_with_line_breaks_makes_a_one_line_subject() -> None:
    from stackhub.notify.delivery import subject_of

    assert subject_of({"text": "The backup failed: restic said\nFatal: x\r\nBcc: a@b.c",
                       "resolved": True}) == \
        "[StackHub] The backup failed: restic said Fatal: x Bcc: a@b.c (resolved)"


def test_smtp_through_a_local_sink_and_starttls_refused_clearly() -> None:
    """smtplib against aiosmtpd (no TLS): a plain send arrives; STARTTLS asked of a server
    that does not offer it fails at once with the reason, without retries."""
    import socket

    from aiosmtpd.controller import Controller

    from stackhub.notify.delivery import send_email

    class Sink:
        def __init__(self) -> None:
            self.contents: list[bytes] = []

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            self.contents.append(envelope.content)
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        config = {"host": "127.0.0.1", "port": port, "sender": "sh@example.com",
                  "recipients": ["ops@example.com"], "starttls": False, "ssl": False}
        send_email(config, None, {"text": "Disk full", "kind": "disk_full"}, 5.0)
        assert len(sink.contents) == 1 and b"Subject: [StackHub] Disk full" in sink.contents[0]
        with pytest.raises(DeliveryFailed) as caught:
            send_email({**config, "starttls": True}, None, {"text": "x"}, 5.0)
        assert "does not offer STARTTLS" in caught.value.message and not caught.value.retry
        assert len(sink.contents) == 1
    finally:
        controller.stop()
