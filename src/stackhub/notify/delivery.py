"""Deliver notifications by webhook (httpx, signed JSON) and e-mail (smtplib in a thread).

`submit()` never blocks its caller: it queues; each delivery runs as a task with a timeout
per try and retries with a doubling backoff. The outcome of the last delivery of each channel
is recorded (shown in the channel settings).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import uuid
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import Any

import httpx

from stackhub.notify.channels import Channel, ChannelStore
from stackhub.notify.models import ChannelKind, TestResult

log = logging.getLogger(__name__)
SIGNATURE = "X-StackHub-Signature"
TRIES = 4
BACKOFF = 1.0  # seconds before the 2nd try, doubling
TIMEOUT = 10.0
PARALLEL = 4
QUEUE = 1000


class DeliveryFailed(Exception):
    """A delivery try failed; `retry` says whether trying again may help."""

    def __init__(self, message: str, *, retry: bool = True) -> None:
        """Keep the reason."""
        super().__init__(message)
        self.message = message
        self.retry = retry


def sign(secret: str, body: bytes) -> str:
    """Return the signature header's value: ``sha256=`` + HMAC-SHA256 of the body, hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def subject_of(payload: dict[str, Any]) -> str:
    """Return an e-mail subject for a payload."""
    state = " (resolved)" if payload.get("resolved") else ""
    text = " ".join(str(payload.get("text", "")).split())  # no line break may reach a header
    return f"[StackHub] {text}{state}"[:200]


def email_body(payload: dict[str, Any]) -> str:
    """Return an e-mail's plain text for a payload."""
    lines = [str(payload.get("text", "")), ""]
    if payload.get("resolved"):
        lines.append("This condition has cleared.")
    if payload.get("url"):
        lines.append(f"Open: {payload['url']}")
    lines += ["", f"Kind: {payload.get('kind')}", f"Severity: {payload.get('severity')}",
              f"Time: {payload.get('updated_at') or payload.get('created_at')}"]
    return "\n".join(lines) + "\n"


def send_email(config: dict[str, Any], password: str | None, payload: dict[str, Any],
               timeout: float) -> None:
    """Send one e-mail through the channel's SMTP server (blocking; run it in a thread)."""
    message = EmailMessage()
    message["From"] = config["sender"]
    message["To"] = ", ".join(config["recipients"])
    message["Subject"] = subject_of(payload)
    message.set_content(email_body(payload))
    host, port = str(config["host"]), int(config["port"])
    try:
        client: smtplib.SMTP
        if config.get("ssl"):
            client = smtplib.SMTP_SSL(host, port, timeout=timeout,
                                      context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            if config.get("starttls") and not config.get("ssl"):
                client.ehlo()
                if not client.has_extn("starttls"):
                    raise DeliveryFailed(f"{host}:{port} does not offer STARTTLS; turn it off "
                                         "only if the network is trusted", retry=False)
                client.starttls(context=ssl.create_default_context())
                client.ehlo()
            if config.get("username"):
                client.login(str(config["username"]), password or "")
            client.send_message(message)
    except smtplib.SMTPAuthenticationError as err:
        raise DeliveryFailed(f"the SMTP server refused the user name or password "
                             f"({err.smtp_code})", retry=False) from err
    except smtplib.SMTPResponseException as err:
        said = err.smtp_error if isinstance(err.smtp_error, str) else \
            err.smtp_error.decode(errors="replace")
        raise DeliveryFailed(f"the SMTP server answered {err.smtp_code}: {said[:200]}",
                             retry=err.smtp_code >= 400 and err.smtp_code < 500) from err
    except (smtplib.SMTPException, OSError) as err:
        raise DeliveryFailed(f"cannot send through {host}:{port}: {err}") from err
    except ValueError as err:  # a header the e-mail library refuses
        raise DeliveryFailed(f"cannot write the e-mail: {err}", retry=False) from err


Mailer = Callable[[dict[str, Any], str | None, dict[str, Any], float], None]


class Deliveries:
    """Queue and send notifications through the enabled channels."""

    def __init__(self, channels: ChannelStore, *,
                 transport: httpx.AsyncBaseTransport | None = None, tries: int = TRIES,
                 backoff: float = BACKOFF, timeout: float = TIMEOUT, mailer: Mailer = send_email,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Send with `transport` (httpx's default; tests give a MockTransport) and `mailer`."""
        self.channels = channels
        self.transport = transport
        self.tries = tries
        self.backoff = backoff
        self.timeout = timeout
        self.mailer = mailer
        self.sleep = sleep
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(PARALLEL)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(QUEUE)
        self._worker = asyncio.create_task(self._work(), name="notify-deliveries")

    async def stop(self) -> None:
        """Stop the worker and cancel deliveries still retrying."""
        tasks = [t for t in (self._worker, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._worker = None

    async def drain(self) -> None:
        """Wait until every queued delivery has ended (tests)."""
        if self._queue is not None:
            await self._queue.join()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def submit(self, payload: dict[str, Any]) -> None:
        """Queue a payload for every enabled channel, from any thread; never blocks."""
        loop, queue = self._loop, self._queue
        if loop is None or queue is None or loop.is_closed():
            return

        def put() -> None:
            if queue.full():
                log.warning("notification deliveries are backed up; dropping the oldest")
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                    queue.task_done()
            queue.put_nowait(payload)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            put()
        else:
            loop.call_soon_threadsafe(put)

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            payload = await self._queue.get()
            try:
                for channel in await asyncio.to_thread(self.channels.enabled):
                    task = asyncio.create_task(self._deliver(channel, payload))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            except Exception:
                log.exception("cannot read the notification channels")
            finally:
                self._queue.task_done()

    # -- sending ----------------------------------------------------------------------------
    async def _deliver(self, channel: Channel, payload: dict[str, Any]) -> None:
        async with self._slots:
            error = await self.send(channel, payload, tries=self.tries)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.channels.delivered, channel.kind, error is None, error)
        if error is not None:
            log.warning("notification %s not delivered by %s: %s", payload.get("id"),
                        channel.kind.value, error)

    async def send(self, channel: Channel, payload: dict[str, Any], *,
                   tries: int) -> str | None:
        """Send one payload through one channel, retrying; return the last error or None."""
        delay = self.backoff
        error: str | None = None
        for attempt in range(1, tries + 1):
            try:
                if channel.kind is ChannelKind.WEBHOOK:
                    await self._post(channel, payload)
                else:
                    await asyncio.to_thread(self.mailer, channel.config, channel.secret,
                                            payload, self.timeout)
                return None
            except DeliveryFailed as err:
                error = err.message
                if not err.retry or attempt == tries:
                    break
            except Exception as err:  # a bug or odd settings: say so, never kill the worker
                log.exception("delivery by %s failed", channel.kind.value)
                error = f"delivery failed: {type(err).__name__}: {err}"
                break
            await self.sleep(delay)
            delay *= 2
        return error

    async def _post(self, channel: Channel, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "StackHub",
                   "X-StackHub-Event": str(payload.get("kind")),
                   "X-StackHub-Delivery": uuid.uuid4().hex,
                   SIGNATURE: sign(channel.secret or "", body)}
        url = str(channel.config["url"])
        try:
            async with httpx.AsyncClient(transport=self.transport, timeout=self.timeout,
                                         follow_redirects=False, trust_env=False) as client:
                answer = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as err:
            raise DeliveryFailed(f"cannot reach {url}: {err or type(err).__name__}") from err
        if answer.status_code >= 300:
            retry = answer.status_code >= 500 or answer.status_code in (408, 429)
            raise DeliveryFailed(f"{url} answered {answer.status_code}", retry=retry)

    async def test(self, channel: Channel, payload: dict[str, Any]) -> TestResult:
        """Send a test payload once (no retries) and say how it went (recorded too)."""
        error = await self.send(channel, payload, tries=1)
        await asyncio.to_thread(self.channels.delivered, channel.kind, error is None, error)
        return TestResult(kind=channel.kind, ok=error is None, error=error)
