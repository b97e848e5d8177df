"""Find the local server and its token, and call the API with readable errors."""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from stackhub.cli.transport import HttpTransport, Reply, Transport, TransportError
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


_TOKEN = re.compile(r"^[\x21-\x7e]{1,512}$")  # printable ASCII, no spaces
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


def query(params: Mapping[str, Any] | None) -> str:
    """Encode query parameters the way the API reads them (booleans as true/false)."""
    if not params:
        return ""
    items = [(k, ("true" if v else "false") if isinstance(v, bool) else str(v))
             for k, v in params.items() if v is not None]
    return "?" + urllib.parse.urlencode(items) if items else ""


def error_of(status: int, body: bytes) -> ClientError:
    """Turn an API error answer into a ClientError with its code, message and details."""
    try:
        err = json.loads(body).get("error", {})
        return ClientError(str(err.get("message") or body.decode(errors="replace")),
                           code=str(err.get("code", "error")), status=status,
                           details=err.get("details"))
    except (ValueError, AttributeError):
        return ClientError(f"HTTP {status}: {body[:300].decode(errors='replace')}",
                           status=status)


class Client:
    """An API client bound to one server URL and token."""

    def __init__(self, url: str | None = None, token: str | None = None,
                 data_dir: Path | None = None, transport: Transport | None = None) -> None:
        """Resolve URL and token from arguments, environment and the data directory."""
        paths = Paths(data_dir or default_data_dir())
        self.url = (url or os.environ.get("STACKHUB_URL") or self._server_url(paths)).rstrip("/")
        self.token = (token or os.environ.get("STACKHUB_TOKEN") or self._token(paths) or
                      "").strip() or None
        self._transport = transport

    @property
    def transport(self) -> Transport:
        """Return the wire to the server, made on first use (so a bad URL fails then)."""
        if self._transport is None:
            if self.token is not None and not _TOKEN.fullmatch(self.token):
                raise ClientError("the API token (STACKHUB_TOKEN or the saved token file) has "
                                  "characters a token never has; sign in again or fix it",
                                  code="usage")
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            try:
                self._transport = HttpTransport(self.url, headers)
            except TransportError as err:
                raise ClientError(f"STACKHUB_URL: {err}", code="usage") from err
        return self._transport

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

    def _unreachable(self, err: TransportError) -> ClientError:
        if err.refused:
            return ClientError(f"the StackHub server is not running at {self.url} (start it "
                               "with `stackhub serve` or `sudo bash scripts/up`)",
                               code="server_unavailable")
        return ClientError(f"talking to {self.url} failed: {err}")

    def request(self, method: str, path: str, *, json: Any = None,
                params: Mapping[str, Any] | None = None) -> Any:
        """Call the API and return decoded JSON, or raise ClientError."""
        check_path(path)
        body = None if json is None else _dumps(json)
        try:
            reply: Reply = self.transport.request(method, path + query(params), body)
        except TransportError as err:
            raise self._unreachable(err) from err
        if reply.status >= 400:
            raise error_of(reply.status, reply.body)
        try:
            return _loads(reply.body) if reply.body else None
        except ValueError as err:
            raise ClientError(f"{self.url} did not answer with JSON (is it a StackHub "
                              "server?)") from err

    def stream_lines(self, path: str, params: Mapping[str, Any] | None = None, *,
                     read_timeout: float | None = None) -> Iterator[str]:
        """Stream a text response line by line (`read_timeout`: longest silence allowed)."""
        check_path(path)
        try:
            with self.transport.stream(path + query(params), read_timeout) as answer:
                if answer.status >= 400:
                    raise error_of(answer.status, answer.rest())
                yield from answer.lines
        except TransportError as err:
            raise self._unreachable(err) from err


def _dumps(data: Any) -> bytes:
    return json.dumps(data).encode("utf-8")


def _loads(body: bytes) -> Any:
    return json.loads(body)
