"""Terminal routes: websockets into an instance's containers and onto the host.

``/api/instances/{name}/terminal`` (admins, and members granted the instance) and
``/api/host/terminal`` (admins; off unless enabled; password and TOTP again) open through
`guarded_socket` (Origin, sign-in, role and grants, re-checked every minute and closed at
sign-out). No credential ever travels in the URL: browsers send their session cookie with the
upgrade, other clients a Bearer header. After ``auth_ok`` the client sends its ``start``
message; then binary frames carry bytes (server to client prefixed with the stream byte, 1
stdout, 2 stderr), JSON frames carry control: ``resize`` and ``eof`` from the client,
``started``, ``exit`` (with the code) and ``error`` from the server. However the socket ends,
the process ends with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from stackhub.api.deps import AdminDep, ServicesDep
from stackhub.api.errors import body, status_of
from stackhub.api.sockets import GuardedSocket, guarded_socket
from stackhub.apps.models import check_name
from stackhub.auth.models import Principal
from stackhub.errors import Forbidden, Invalid, NotFound, StackHubError
from stackhub.services import Services
from stackhub.tools.terminal_models import (
    ContainerTerminalStart,
    HostTerminalRead,
    HostTerminalStart,
    Resize,
)
from stackhub.tools.terminals import Terminal, Terminals
from stackhub.tools.terminals_host import HostTerminal

log = logging.getLogger("stackhub.terminals")

router = APIRouter(tags=["tools"])
"""HTTP routes, mounted under /api with the global policy (admin-only unless listed)."""
sockets = APIRouter(tags=["tools"])
"""Websocket routes, mounted at the top level (they authenticate through guarded_socket)."""

START_TIMEOUT = 30.0


def terminals_of(services: Services) -> Terminals:
    """Return the server's terminals service."""
    found: Terminals = services.terminals
    return found


@router.get("/host/terminal", response_model=HostTerminalRead, summary="Host terminal state")
async def host_terminal_state(services: ServicesDep, _admin: AdminDep) -> HostTerminalRead:
    """Say whether the host terminal is enabled (STACKHUB_HOST_TERMINAL=1) and its timeout."""
    terminals = terminals_of(services)
    return HostTerminalRead(enabled=terminals.host_enabled,
                            idle_timeout=terminals.idle_timeout)


def _ip(ws: WebSocket) -> str:
    return ws.client.host if ws.client else ""


async def _fail(ws: WebSocket, err: StackHubError) -> None:
    """Send an error message and close with 4000 + its HTTP status."""
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await ws.send_json({"type": "error", **body(err.code, err.message, err.details)})
        await ws.close(code=4000 + status_of(err))


async def _receive(ws: WebSocket, timeout: float | None = None) -> dict[str, Any] | None:
    """Return the next message, or None once the client is gone (or after `timeout` s)."""
    try:
        message = dict(await asyncio.wait_for(_next(ws), timeout))
    except (TimeoutError, RuntimeError, WebSocketDisconnect):
        return None
    return None if message["type"] == "websocket.disconnect" else message


async def _next(ws: WebSocket) -> dict[str, Any]:
    return dict(await ws.receive())


async def _start_message(ws: WebSocket) -> dict[str, Any]:
    message = await _receive(ws, START_TIMEOUT)
    if message is None:
        raise Invalid("no start message")
    try:
        raw = json.loads(message.get("text") or "")
    except ValueError as err:
        raise Invalid("the first message must be a JSON start message") from err
    if not isinstance(raw, dict):
        raise Invalid("the first message must be a JSON start message")
    return raw


def _parse(model: type[Any], raw: dict[str, Any]) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Invalid(f"bad {raw.get('type', 'start')} message: {where}: {first['msg']}") \
            from err


async def pump(ws: WebSocket, terminal: Terminal, *, idle: float | None = None) -> str:
    """Carry bytes both ways until the process ends, the client goes or it idles.

    Return why it ended: ``exit``, ``disconnect`` or ``idle``. The caller ends the terminal.
    """
    async def output() -> None:
        while (chunk := await terminal.read()) is not None:
            stream, data = chunk
            await ws.send_bytes(bytes([stream]) + data)

    async def control(text: str) -> None:
        with contextlib.suppress(ValueError):
            raw = json.loads(text)
            kind = raw.get("type") if isinstance(raw, dict) else None
            if kind == "resize":
                with contextlib.suppress(ValidationError):
                    size = Resize.model_validate(raw)
                    await terminal.resize(size.rows, size.cols)
            elif kind == "eof":
                terminal.close_stdin()

    async def input_() -> str:
        while True:
            message = await _receive(ws, idle)
            if message is None:
                return "idle" if idle is not None and ws.client_state.name == "CONNECTED" \
                    else "disconnect"
            if message.get("bytes"):
                await terminal.write(message["bytes"])
            elif message.get("text"):
                await control(message["text"])

    out_task = asyncio.create_task(output())
    in_task = asyncio.create_task(input_())
    try:
        done, _ = await asyncio.wait({out_task, in_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (out_task, in_task):
            task.cancel()
        for task in (out_task, in_task):
            with contextlib.suppress(asyncio.CancelledError, RuntimeError, WebSocketDisconnect,
                                     ConnectionError):
                await task
    if out_task in done and in_task not in done:
        return "exit"
    if in_task in done and not in_task.cancelled() and in_task.exception() is None:
        return in_task.result()
    return "disconnect"


async def _finish(ws: WebSocket, terminal: Terminal) -> int | None:
    """Report the exit code to the client and close normally."""
    code = await terminal.exit_code()
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await ws.send_json({"type": "exit", "code": code})
        await ws.close(code=1000)
    return code


_ENDING: set[asyncio.Task[None]] = set()


async def _end(terminal: Terminal) -> None:
    """End the terminal's process even if this task is cancelled (the server stopping, or the
    connection's task torn down): the ending runs on in its own task, and what can be ended
    without the loop is ended at once (the loop may stop before that task runs)."""
    task = asyncio.ensure_future(terminal.end())
    _ENDING.add(task)
    task.add_done_callback(_ENDING.discard)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        terminal.abandon()
        raise


def _grant_check(services: Services, name: str) -> Any:
    def check(principal: Principal) -> None:
        if not services.auth.accounts.may_see(principal, name):
            raise NotFound(f"no instance named {name!r}")
    return check


def _audit(session: GuardedSocket, action: str, target: str, *, success: bool = True,
           **details: Any) -> None:
    session.services.auth.audit.record(actor=session.principal.name, action=action,
                                       target=target, ip=_ip(session.ws), success=success,
                                       details=details)


@sockets.websocket("/api/instances/{name}/terminal")
async def container_terminal(ws: WebSocket, name: str) -> None:
    """A terminal into one of an instance's containers (see the module's protocol)."""
    services: Services = ws.app.state.services
    async with guarded_socket(ws, services, check=_grant_check(services, name)) as session:
        if session is None:
            return
        try:
            with terminals_of(services).slot(session.principal.name):
                await _container_session(session, name)
        except StackHubError as err:
            await _fail(ws, err)


async def _container_session(session: GuardedSocket, name: str) -> None:
    ws = session.ws
    services = session.services
    try:
        check_name(name)
        start = _parse(ContainerTerminalStart, await _start_message(ws))
        terminal = await terminals_of(services).open_container(name, start)
    except StackHubError as err:
        await _fail(ws, err)
        return
    began = time.monotonic()
    _audit(session, "terminal.open", name, service=terminal.description.split("/")[-1],
           command=(start.command or ["shell"])[0][:100])
    reason = "disconnect"
    code: int | None = None
    try:
        await ws.send_json({"type": "started", "target": terminal.description})
        reason = await pump(ws, terminal)
        if reason == "exit":
            code = await _finish(ws, terminal)
    finally:
        try:
            await _end(terminal)
        finally:
            _audit(session, "terminal.close", name, reason=reason, exit_status=code,
                   seconds=round(time.monotonic() - began, 1))


@sockets.websocket("/api/host/terminal")
async def host_terminal(ws: WebSocket) -> None:
    """A root shell on the host for admins: enabled by setting, password (and TOTP) again."""
    services: Services = ws.app.state.services
    terminals = terminals_of(services)
    async with guarded_socket(ws, services, require_admin=True) as session:
        if session is None:
            return
        try:
            with terminals.slot(session.principal.name):
                await _host_session(session, terminals)
        except StackHubError as err:
            await _fail(ws, err)


async def _host_session(session: GuardedSocket, terminals: Terminals) -> None:
    ws = session.ws
    services = session.services
    try:
        raw = await _start_message(ws)
        if not terminals.host_enabled:
            raise Forbidden("the host terminal is off: start the server with "
                            "STACKHUB_HOST_TERMINAL=1 to allow it",
                            details={"reason": "host_terminal_off"})
        start = _parse(HostTerminalStart, raw)
        await asyncio.to_thread(services.auth.reauthenticate, session.principal,
                                start.password, start.code, ip=_ip(ws))
        terminal = HostTerminal(start.rows, start.cols, shell=terminals.host_shell)
    except StackHubError as err:
        _audit(session, "host_terminal.open", "host", success=False, reason=err.code,
               error=err.message[:200])
        await _fail(ws, err)
        return
    except OSError as err:
        await _fail(ws, Invalid(f"cannot start a shell: {err.strerror or err}"))
        return
    began = time.monotonic()
    _audit(session, "host_terminal.open", "host", pid=terminal.proc.pid)
    reason = "disconnect"
    code: int | None = None
    try:
        await ws.send_json({"type": "started", "target": "host",
                            "idle_timeout": terminals.idle_timeout})
        reason = await pump(ws, terminal, idle=float(terminals.idle_timeout))
        if reason == "exit":
            code = await _finish(ws, terminal)
        elif reason == "idle":
            await _fail(ws, Forbidden(f"closed after {terminals.idle_timeout} s without "
                                      "input", details={"reason": "idle"}))
    finally:
        try:
            await _end(terminal)
        finally:
            _audit(session, "host_terminal.close", "host", reason=reason, exit_status=code,
                   seconds=round(time.monotonic() - began, 1))
