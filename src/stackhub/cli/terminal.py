"""``stackhub app exec``: a command or a shell in an instance's container, over the API.

The terminal websocket (``/api/instances/{name}/terminal``) authenticates with the CLI's
Bearer header, never the URL. With stdin and stdout on a terminal the session is interactive:
a TTY in the container, the local terminal in raw mode, its size sent at start and on every
SIGWINCH. Otherwise stdin is copied until end of file (then ``eof``), stdout and stderr stay
apart, and the command's exit code becomes the CLI's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import threading
import urllib.parse
from typing import Any

from stackhub.cli.client import Client, ClientError, check_path

CONNECT_TIMEOUT = 30.0
STDOUT = 1
STDERR = 2


def socket_url(base: str, path: str) -> str:
    """Turn the server's http(s) URL into the ws(s) URL of `path`."""
    parts = urllib.parse.urlsplit(base)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ClientError(f"STACKHUB_URL: {base!r} is not an http:// or https:// URL",
                          code="usage")
    return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + path, "",
                                    ""))


def _error(message: dict[str, Any]) -> ClientError:
    err = message.get("error") or {}
    return ClientError(str(err.get("message", "the server refused the terminal")),
                       code=str(err.get("code", "error")), details=err.get("details") or {})


def _size() -> tuple[int, int]:
    size = shutil.get_terminal_size((80, 24))
    return size.lines, size.columns


def run_exec(name: str, service: str | None, command: list[str] | None, *,
             client: Client | None = None, interactive: bool | None = None) -> int:
    """Run the session to its end and return the command's exit code."""
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
    from websockets.sync.client import connect

    client = client or Client()
    path = check_path(f"/api/instances/{name}/terminal")
    if interactive is None:
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
    headers = {"Authorization": f"Bearer {client.token}"} if client.token else {}
    rows, cols = _size() if interactive else (24, 80)
    try:
        ws = connect(socket_url(client.url, path), additional_headers=headers,
                     open_timeout=CONNECT_TIMEOUT, max_size=None, compression=None)
    except InvalidStatus as err:
        raise ClientError(f"the server refused the terminal ({err.response.status_code})") \
            from err
    except ConnectionRefusedError as err:
        raise ClientError(f"the StackHub server is not running at {client.url}",
                          code="server_unavailable") from err
    except (OSError, InvalidHandshake, TimeoutError) as err:
        raise ClientError(f"cannot open a terminal at {client.url}: {err}") from err
    with ws:
        try:
            first = json.loads(ws.recv(CONNECT_TIMEOUT))
            if first.get("type") != "auth_ok":
                raise _error(first)
            start: dict[str, Any] = {"type": "start", "tty": interactive, "rows": rows,
                                     "cols": cols}
            if service:
                start["service"] = service
            if command:
                start["command"] = command
            ws.send(json.dumps(start))
            answer = json.loads(ws.recv(CONNECT_TIMEOUT))
            if answer.get("type") != "started":
                raise _error(answer)
        except ConnectionClosed as err:
            raise ClientError(f"the server closed the terminal ({err})") from err
        except TimeoutError as err:
            raise ClientError("the server did not answer in time") from err
        return _session(ws, interactive)


def _session(ws: Any, interactive: bool) -> int:
    from websockets.exceptions import ConnectionClosed

    stop = threading.Event()

    def feed() -> None:
        fd = sys.stdin.fileno()
        try:
            while not stop.is_set():
                data = os.read(fd, 65536)
                if not data:
                    if not interactive:
                        ws.send(json.dumps({"type": "eof"}))
                    return
                ws.send(data)
        except (OSError, ConnectionClosed):
            return

    restore: list[Any] = []
    if interactive:
        import termios
        import tty

        fd = sys.stdin.fileno()
        restore.append((fd, termios.tcgetattr(fd)))
        tty.setraw(fd)

        def resized(_signum: int, _frame: Any) -> None:
            rows, cols = _size()
            with contextlib.suppress(ConnectionClosed, RuntimeError):
                ws.send(json.dumps({"type": "resize", "rows": rows, "cols": cols}))

        restore.append(signal.signal(signal.SIGWINCH, resized))
    threading.Thread(target=feed, daemon=True).start()
    code: int | None = None
    error: ClientError | None = None
    try:
        for message in ws:
            if isinstance(message, bytes):
                if not message:
                    continue
                out = sys.stderr if message[0] == STDERR else sys.stdout
                out.buffer.write(message[1:])
                out.buffer.flush()
                continue
            control = json.loads(message)
            if control.get("type") == "exit":
                code = control.get("code")
            elif control.get("type") == "error":
                error = _error(control)
    except ConnectionClosed:
        pass
    finally:
        stop.set()
        if restore:
            import termios

            fd, attrs = restore[0]
            termios.tcsetattr(fd, termios.TCSADRAIN, attrs)
            signal.signal(signal.SIGWINCH, restore[1])
    if error is not None:
        raise error
    if code is None:
        raise ClientError("the terminal ended without an exit code")
    return int(code)
