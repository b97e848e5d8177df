"""Find the local server and its token, and call the API with readable errors."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from stackhub.config import DEFAULT_PORT, Paths, default_data_dir


class ClientError(Exception):
    """A failure the CLI reports to the user and exits on."""

    def __init__(self, message: str, *, code: str = "error", status: int = 0,
                 details: dict[str, Any] | None = None) -> None:
        """Keep the API's error code and details."""
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = details or {}


_SEGMENT = re.compile(r"^[A-Za-z0-9_@:][A-Za-z0-9._@:-]{0,127}$")


def check_path(path: str) -> str:
    """Refuse API paths whose segments (names typed by the user) could change the target.

    A name like ``../users/admin`` would otherwise be normalised into another endpoint.
    """
    segments = path.split("/")
    if segments[:2] != ["", "api"] or not all(_SEGMENT.match(s) for s in segments[2:]):
        bad = next((s for s in segments[2:] if not _SEGMENT.match(s)), path)
        raise ClientError(f"{bad!r} is not a valid name here", code="usage")
    return path


def user_token_file() -> Path:
    """Return where ``stackhub login`` keeps a user's token."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "stackhub" / "token"


class Client:
    """An API client bound to one server URL and token."""

    def __init__(self, url: str | None = None, token: str | None = None,
                 data_dir: Path | None = None) -> None:
        """Resolve URL and token from arguments, environment and the data directory."""
        paths = Paths(data_dir or default_data_dir())
        self.url = (url or os.environ.get("STACKHUB_URL") or self._server_url(paths)).rstrip("/")
        self.token = token or os.environ.get("STACKHUB_TOKEN") or self._token(paths)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        # a plain-http URL (the local default) needs no TLS context: skip loading CA files
        verify = not self.url.startswith("http://")
        self.http = httpx.Client(base_url=self.url, headers=headers, verify=verify,
                                 timeout=httpx.Timeout(30.0, read=600.0))

    @staticmethod
    def _server_url(paths: Paths) -> str:
        try:
            return str(json.loads(paths.server_info.read_text())["url"])
        except (OSError, ValueError, KeyError):
            return f"http://127.0.0.1:{DEFAULT_PORT}"

    @staticmethod
    def _token(paths: Paths) -> str | None:
        for candidate in (user_token_file(), paths.admin_token):
            try:
                text = candidate.read_text().strip()
            except OSError:
                continue
            if text:
                return text
        return None

    def _fail(self, response: httpx.Response) -> ClientError:
        try:
            err = response.json().get("error", {})
            return ClientError(str(err.get("message") or response.text), code=str(err.get(
                "code", "error")), status=response.status_code, details=err.get("details"))
        except ValueError:
            return ClientError(f"HTTP {response.status_code}: {response.text[:300]}",
                               status=response.status_code)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the API and return decoded JSON, or raise ClientError."""
        check_path(path)
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.ConnectError as err:
            raise ClientError(f"the StackHub server is not running at {self.url} (start it with "
                              "`stackhub serve` or `sudo bash scripts/up`)",
                              code="server_unavailable") from err
        except httpx.HTTPError as err:
            raise ClientError(f"talking to {self.url} failed: {err}") from err
        if response.status_code >= 400:
            raise self._fail(response)
        return response.json() if response.content else None

    def stream_lines(self, path: str, params: dict[str, Any]) -> Iterator[str]:
        """Stream a text response line by line."""
        check_path(path)
        try:
            with self.http.stream("GET", path, params=params, timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._fail(response)
                yield from response.iter_lines()
        except httpx.ConnectError as err:
            raise ClientError(f"the StackHub server is not running at {self.url}",
                              code="server_unavailable") from err

    @contextmanager
    def websocket(self) -> Iterator[ClientConnection]:
        """Open the API websocket, authenticated, for the duration of a with-block."""
        ws_url = "ws" + self.url[4:] + "/api/ws"
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            opened = connect(ws_url, additional_headers=headers, open_timeout=10)
        except OSError as err:
            raise ClientError(f"the StackHub server is not running at {self.url}",
                              code="server_unavailable") from err
        with opened as conn:
            hello = json.loads(conn.recv(timeout=10))
            if hello.get("type") != "auth_ok":
                raise ClientError(hello.get("error", {}).get("message", "websocket auth failed"),
                                  code="unauthorized")
            yield conn
