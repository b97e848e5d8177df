"""The one Caddy adapter: render the gateway's whole JSON config, load it, run and watch Caddy.

StackHub never edits Caddy's config piecemeal: every change renders the complete config from a
`GatewaySpec` (built from StackHub's database by the proxy domain) and sends it with one
``POST /load``. Caddy's admin API listens on a unix socket inside the data root (0700), so only
root reaches it; Caddy 2.6 refuses ``Host: localhost`` on a socket, so requests send an empty
Host. StackHub starts Caddy as its child (dying with it) and starts it again if it dies (or
hangs: killed first), or reuses a system Caddy whose admin socket STACKHUB_CADDY_ADMIN names
(loading the config again when it restarts empty). A child's output is read for certificate
errors; a system Caddy gets a log of its own in the config (`GatewaySpec.log`) that StackHub
reads instead.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import html
import json
import logging
import os
import re
import shutil
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from stackhub.adapters.compose import _die_with_parent, death_pact
from stackhub.errors import GatewayUnavailable

log = logging.getLogger("stackhub.gateway")
SERVER = "stackhub"
"""The name of StackHub's HTTPS server in Caddy's config (its presence marks our config)."""
START_TIMEOUT = 10.0
LOAD_TIMEOUT = 30.0
RESTART_WAIT = 2 * START_TIMEOUT
"""How long a change waits for the watcher to start a dead child again (its back-off, up to
5 s, and its start) before failing."""
CHECK_EVERY = 2.0
"""How often the watcher asks the admin API whether StackHub's config is loaded."""
CHECK_TIMEOUT = 3.0
"""How long that check waits for an answer."""
HANG_CHECKS = 3
"""Checks in a row StackHub's child must leave unanswered (about 15 s) to be taken for hung:
the watcher kills it and starts it again like a dead one (a system Caddy is never killed)."""
FAIL_SECONDS = 2
"""How long a container address whose request failed is skipped for the fallback port."""
ADMIN_URL = "http://caddy-admin"
"""The base URL of admin requests (the socket is the address; the Host header is empty)."""


class _QuietAdmin(logging.Filter):
    """Keep httpx's per-request INFO lines about the admin socket (polled) out of the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or ADMIN_URL not in str(record.args)


logging.getLogger("httpx").addFilter(_QuietAdmin())


@dataclass(frozen=True)
class Route:
    """One host (or several) routed to an upstream, or answered with a fixed page."""

    id: str
    hosts: tuple[str, ...]
    upstream: str | None = None
    """``127.0.0.1:PORT`` or the app container's ``IP:PORT``; None when the app has no web
    port or is stopped (`page` answers)."""
    page: str | None = None
    """The text shown instead of the app (e.g. "app is stopped")."""
    title: str = "App unavailable"
    page_zh: str | None = None
    """`page` in Chinese (for browsers that ask for Chinese first)."""
    title_zh: str | None = None
    path: str = "/"
    """The app's main path: a request for ``/`` is redirected there."""
    tls: bool = False
    """The app itself speaks HTTPS (its own certificate is not checked: it is on loopback)."""
    auth: ForwardAuth | None = None
    """Ask StackHub before every request (the app is behind StackHub's sign-in)."""
    fallback: str | None = None
    """Dialled when `upstream` fails to connect (the app's published port behind its container
    address): one retry at once, and the failed address is skipped for `FAIL_SECONDS`."""


@dataclass(frozen=True)
class ForwardAuth:
    """Where the gateway asks whether a request may pass (Caddy's forward_auth, expanded)."""

    dial: str
    """StackHub's API, ``127.0.0.1:PORT``."""
    uri: str
    """The path and query asked (carries the config's token)."""
    cookie: str = "stackhub_gw"
    """The gateway session cookie, removed from requests before they reach the app."""


@dataclass(frozen=True)
class Acme:
    """The ACME CA Caddy obtains public certificates from."""

    ca: str
    email: str = ""
    roots: tuple[str, ...] = ()
    """PEM files to trust when talking to the CA (test CAs such as Pebble)."""


@dataclass(frozen=True)
class Pem:
    """A certificate (full chain) and key loaded inline (a DNS-01 wildcard).

    Inline, because Caddy does not read changed files again while its config is unchanged
    (caddy #5139); a renewed certificate changes the config, so the load takes it.
    """

    certificate: str
    key: str


@dataclass(frozen=True)
class GatewaySpec:
    """Everything the gateway's config is rendered from."""

    admin: str
    http_port: int
    https_port: int
    storage: Path
    routes: tuple[Route, ...] = ()
    internal: tuple[str, ...] = ()
    """Hosts whose certificates come from Caddy's internal CA (LAN names)."""
    acme: tuple[str, ...] = ()
    """Hosts whose certificates come from the ACME CA, on demand, as `ask` allows."""
    ca: Acme = field(default_factory=lambda: Acme(ca=LETS_ENCRYPT))
    ask: str | None = None
    certificates: tuple[Pem, ...] = ()
    """Certificates loaded as they are; Caddy manages none for the names they cover."""
    log: Path | None = None
    """A file Caddy writes its certificate errors to (a system Caddy, whose output StackHub
    never sees); None for StackHub's child, whose output StackHub reads."""


LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LOG_NAME = "stackhub-errors"
"""The name of StackHub's own log in a system Caddy's config (certificate errors only)."""
LOG_ROLL_MB = 1
LOG_KEEP = 1
LOG_TAIL = 256 * 1024
"""Bytes read from the end of the error log (the file rolls over at `LOG_ROLL_MB`)."""

PAGE = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;color:#333}}</style>
</head><body><h1>{title}</h1><p>{text}</p><p><small>{footer}</small></p></body></html>
"""
FOOTER = {"en": "StackHub gateway", "zh-CN": "StackHub 网关"}
CHINESE_FIRST = "(?i)^\\s*zh"
"""Browsers whose first language is Chinese get the gateway's own pages in Chinese (Simplified,
also for zh-TW and zh-HK: the console has no Traditional Chinese)."""
NO_ROUTE_ZH = ("这里没有应用", "此 StackHub 上没有应用使用这个地址。")
UNREACHABLE_ZH = ("应用没有响应", "这个地址背后的应用没有响应：它可能已停止、正在启动或出现故障。"
                  "请在 StackHub 中查看。")
UNAVAILABLE_ZH = "此应用当前不可用。"
UNAVAILABLE_TITLE_ZH = "应用不可用"


def page(title: str, text: str, lang: str = "en") -> str:
    """Return a small HTML page (escaped) in `lang` (en or zh-CN)."""
    return PAGE.format(title=html.escape(title), text=html.escape(text), lang=lang,
                       footer=FOOTER.get(lang, FOOTER["en"]))


PAGE_HEADER = "X-StackHub-Page"
"""Set on the gateway's own pages (value: one of PAGES), never on an app's answers."""
STOPPED, UNREACHABLE, NO_ROUTE = "unavailable", "not-answering", "no-app"
PAGES = (STOPPED, UNREACHABLE, NO_ROUTE)


def _static(status: int, body: str, kind: str) -> dict[str, Any]:
    return {"handler": "static_response", "status_code": status, "body": body,
            "headers": {"Content-Type": ["text/html; charset=utf-8"],
                        "Cache-Control": ["no-store"], PAGE_HEADER: [kind], "Vary":
                        ["Accept-Language"]}}


def _pages(status: int, en: tuple[str, str], zh: tuple[str, str], kind: str) -> dict[str, Any]:
    """One of the gateway's own pages, in Chinese for a browser that asks for it first."""
    return {"handler": "subroute", "routes": [
        {"match": [{"header_regexp": {"Accept-Language": {"pattern": CHINESE_FIRST}}}],
         "handle": [_static(status, page(*zh, lang="zh-CN"), kind)],
         "terminal": True},
        {"handle": [_static(status, page(*en), kind)]}]}


IDENTITY_HEADERS = ("Remote-User", "Remote-Groups", "Remote-Name", "Remote-Email")
"""Identity headers StackHub's sign-in sets; whatever a client sends under them is deleted."""


def _guard(auth: ForwardAuth) -> list[dict[str, Any]]:
    """Caddy's ``forward_auth`` as JSON, in the safe order: delete, ask, strip the cookie.

    2.6 has forward_auth only in the Caddyfile, whose ``request_header -Remote-User`` would be
    sorted after the auth step (research notes, "forward_auth"); the JSON fixes the order.
    A 2xx answer copies the identity headers onto the request; any other answer (the redirect
    to the sign-in, 403) goes back to the browser as it is.
    """
    copy = {name: [f"{{http.reverse_proxy.header.{name}}}"] for name in IDENTITY_HEADERS[:2]}
    ask = {"handler": "reverse_proxy", "upstreams": [{"dial": auth.dial}],
           "rewrite": {"method": "GET", "uri": auth.uri},
           "headers": {"request": {"set": {
               "X-Forwarded-Method": ["{http.request.method}"],
               "X-Forwarded-Uri": ["{http.request.uri}"]}}},
           "handle_response": [{"match": {"status_code": [2]}, "routes": [{"handle": [
               {"handler": "headers", "request": {"set": copy}}]}]}]}
    strip = {"handler": "headers", "request": {"replace": {"Cookie": [
        {"search_regexp": f"(^|;\\s*){auth.cookie}=[^;]*", "replace": ""}]}}}
    return [{"handle": [{"handler": "headers", "request": {"delete": list(IDENTITY_HEADERS)}}]},
            {"handle": [ask]}, {"handle": [strip]}]


def _route(route: Route) -> dict[str, Any]:
    if route.upstream is None:
        handler = _pages(503, (route.title, route.page or "This app is not available."),
                         (route.title_zh or UNAVAILABLE_TITLE_ZH, route.page_zh or UNAVAILABLE_ZH),
                         STOPPED)
        if route.auth is None:
            return {"@id": f"stackhub-{route.id}", "match": [{"host": list(route.hosts)}],
                    "handle": [handler], "terminal": True}
        return {"@id": f"stackhub-{route.id}", "match": [{"host": list(route.hosts)}],
                "handle": [{"handler": "subroute", "routes": [*_guard(route.auth),
                                                              {"handle": [handler]}]}],
                "terminal": True}
    proxy: dict[str, Any] = {"handler": "reverse_proxy", "upstreams": [{"dial": route.upstream}]}
    transport: dict[str, Any] = {}
    if route.tls:
        transport = {"protocol": "http", "tls": {"insecure_skip_verify": True}}
    if route.fallback is not None and route.fallback != route.upstream:
        # a container address can be stale for a second (the container was recreated): the
        # first connect failure goes on to the published port, then the address rests
        proxy["upstreams"].append({"dial": route.fallback})
        proxy["load_balancing"] = {"selection_policy": {"policy": "first"}, "retries": 1,
                                   "try_interval": "10ms"}
        proxy["health_checks"] = {"passive": {"fail_duration": f"{FAIL_SECONDS}s",
                                              "max_fails": 1}}
    if transport:
        proxy["transport"] = transport
    steps: list[dict[str, Any]] = [{"handle": [proxy]}]
    if route.path not in ("", "/"):
        steps.insert(0, {"match": [{"path": ["/"]}], "terminal": True, "handle": [{
            "handler": "static_response", "status_code": 302,
            "headers": {"Location": [route.path]}}]})
    if route.auth is not None:
        steps = [*_guard(route.auth), *steps]
    else:  # an app that trusted them while protected must not be fooled once it is not
        steps.insert(0, {"handle": [{"handler": "headers",
                                     "request": {"delete": list(IDENTITY_HEADERS)}}]})
    return {"@id": f"stackhub-{route.id}", "match": [{"host": list(route.hosts)}],
            "handle": [{"handler": "subroute", "routes": steps}], "terminal": True}


def render(spec: GatewaySpec) -> dict[str, Any]:
    """Return Caddy's complete JSON config for `spec` (admin socket included)."""
    routes = [_route(r) for r in spec.routes]
    routes.append({"handle": [_pages(404, (
        "No app here", "No app of this StackHub answers at this address."), NO_ROUTE_ZH,
        NO_ROUTE)], "terminal": True})
    unreachable = _pages(502, (
        "App not answering", "The app behind this address does not answer: it may be "
        "stopped, starting or failing. Check it in StackHub."), UNREACHABLE_ZH, UNREACHABLE)
    server: dict[str, Any] = {
        "listen": [f":{spec.https_port}"], "routes": routes,
        "errors": {"routes": [{"handle": [unreachable], "terminal": True}]},
    }
    policies: list[dict[str, Any]] = []
    if spec.internal:
        policies.append({"subjects": sorted(spec.internal), "issuers": [{"module": "internal"}]})
    if spec.acme:
        issuer: dict[str, Any] = {"module": "acme", "ca": spec.ca.ca,
                                  "challenges": {"tls-alpn": {"disabled": True}}}
        if spec.ca.email:
            issuer["email"] = spec.ca.email
        if spec.ca.roots:
            issuer["trusted_roots_pem_files"] = list(spec.ca.roots)
        policies.append({"subjects": sorted(spec.acme), "issuers": [issuer],
                         "on_demand": spec.ask is not None})
    # the rate limit always, even with no on-demand name: Caddy 2.6.2 keeps one limiter per
    # process and resets it, for a config without one, in an order that panics in the /load
    # handler once an earlier config set it (the load dropped unanswered, the old config kept)
    on_demand: dict[str, Any] = {"rate_limit": {"interval": "1m", "burst": 30}}
    if spec.ask is not None:
        on_demand["ask"] = spec.ask
    automation: dict[str, Any] = {"policies": policies, "on_demand": on_demand}
    tls: dict[str, Any] = {"automation": automation}
    if spec.certificates:
        tls["certificates"] = {"load_pem": [
            {"certificate": p.certificate, "key": p.key, "tags": ["stackhub-wildcard"]}
            for p in spec.certificates]}
    config: dict[str, Any] = {
        "admin": {"listen": spec.admin, "config": {"persist": False}},
        "storage": {"module": "file_system", "root": str(spec.storage)},
        "apps": {
            "http": {"http_port": spec.http_port, "https_port": spec.https_port,
                     "servers": {SERVER: server}},
            "tls": tls,
            "pki": {"certificate_authorities": {"local": {"install_trust": False}}},
        },
    }
    if spec.log is not None:
        config["logging"] = {"logs": {LOG_NAME: _log(spec.log)}}
    return config


def _log(path: Path) -> dict[str, Any]:
    """Return a log of the tls loggers' errors (obtaining, ACME, on-demand) into `path`, JSON,
    rolled over at `LOG_ROLL_MB` with `LOG_KEEP` old file(s)."""
    return {"writer": {"output": "file", "filename": str(path), "roll_size_mb": LOG_ROLL_MB,
                       "roll_keep": LOG_KEEP},
            "encoder": {"format": "json"}, "level": "ERROR", "include": ["tls"]}


def caddy_binary() -> str | None:
    """Return the caddy program's path, or None if it is not installed."""
    return os.environ.get("STACKHUB_CADDY_BIN") or shutil.which("caddy")


LOAD_ATTEMPTS = 3


class _NoAnswer(GatewayUnavailable):
    """The admin socket closed the connection (or refused it) without an answer."""


class _Refused(GatewayUnavailable):
    """The admin API answered with an error status (e.g. 400 for a path its config lacks)."""


class CaddyAdmin:
    """A client of Caddy's admin API on a unix socket."""

    def __init__(self, socket: Path) -> None:
        """Talk to the admin API listening on `socket`."""
        self.socket = socket

    def _client(self, timeout: float) -> httpx.AsyncClient:
        # Host must be empty: Caddy 2.6 answers 403 "host not allowed" to localhost on a socket.
        # Plain HTTP on a unix socket: verify=False skips building a TLS context from the CA
        # bundle (60 ms CPU per call, most of a route change's own cost); no proxy applies.
        return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(self.socket),
                                                                    verify=False),
                                 base_url=ADMIN_URL, headers={"Host": ""},
                                 timeout=timeout, trust_env=False)

    async def _call(self, method: str, path: str, *, body: object = None,
                    timeout: float = 10.0, answered: bool = False) -> httpx.Response:
        try:
            async with self._client(timeout) as client:
                answer = await client.request(method, path, json=body)
        except httpx.HTTPError as err:
            kind = _NoAnswer if answered and not isinstance(err, httpx.TimeoutException) \
                else GatewayUnavailable
            raise kind(f"the gateway (Caddy) does not answer on {self.socket}: "
                       f"{err or type(err).__name__}") from err
        if answer.status_code >= 400:
            try:
                message = str(answer.json().get("error", answer.text))
            except ValueError:
                message = answer.text
            raise _Refused(f"the gateway (Caddy) refused {method} {path}: "
                           f"{message.strip()[:500]}")
        return answer

    async def alive(self) -> bool:
        """Tell whether the admin API answers."""
        try:
            await self._call("GET", "/config/admin", timeout=3.0)
        except GatewayUnavailable:
            return False
        return True

    async def loaded(self) -> bool:
        """Tell whether StackHub's config is the one loaded (false after a bare restart)."""
        try:
            answer = await self._call("GET", f"/config/apps/http/servers/{SERVER}",
                                      timeout=CHECK_TIMEOUT)
        except _Refused:  # a config without apps: 400 "invalid traversal path" (Caddy 2.6)
            return False
        return answer.text.strip() not in ("", "null")

    async def load(self, config: dict[str, Any]) -> None:
        """Replace Caddy's whole config (one graceful reload).

        Every load makes Caddy replace its admin server (the old one shuts down in the
        background), so a request arriving in between may find its connection closed: a load
        that never got an answer is sent again (it is idempotent: the whole config).
        """
        for attempt in range(LOAD_ATTEMPTS):
            try:
                await self._call("POST", "/load", body=config, timeout=LOAD_TIMEOUT,
                                 answered=True)
                return
            except _NoAnswer as err:
                if attempt == LOAD_ATTEMPTS - 1:
                    raise GatewayUnavailable(err.message) from err
                await asyncio.sleep(0.2 * (attempt + 1))

    async def ca_root(self) -> str:
        """Return the PEM root certificate of Caddy's internal CA."""
        data = (await self._call("GET", "/pki/ca/local")).json()
        return str(data.get("root_certificate", ""))


GOGC = 400  # the gateway's garbage collector target (Go: 100), unless STACKHUB_GATEWAY_GOGC says


def gateway_gogc(env: Mapping[str, str] | None = None) -> str:
    """Return the GOGC value Caddy runs with: STACKHUB_GATEWAY_GOGC (25 to 10000), else
    `GOGC`."""
    raw = (env if env is not None else os.environ).get("STACKHUB_GATEWAY_GOGC", "").strip()
    if raw.isdigit() and 25 <= int(raw) <= 10000:
        return str(int(raw))
    return str(GOGC)


def last_error(entries: Iterable[dict[str, Any]], identifier: str | None = None) -> str | None:
    """Return the last error among Caddy's log `entries` (about `identifier`, if given)."""
    for entry in reversed(list(entries)):
        if entry.get("level") not in ("error", "fatal"):
            continue
        if identifier is not None and identifier not in json.dumps(entry):
            continue
        return f"{entry.get('msg', '')}: {entry.get('error', '')}".strip(": ")
    return None


def errors(entries: Iterable[dict[str, Any]], identifier: str, since: float) -> list[str]:
    """Return the errors among Caddy's log `entries` about `identifier` from `since` (Unix
    time), oldest first."""
    found = []
    name = re.compile(rf"(?<![\w.-]){re.escape(identifier)}(?![\w-]|\.\w)")
    for entry in entries:
        stamp = entry.get("ts")
        if entry.get("level") not in ("error", "fatal") or \
                not isinstance(stamp, int | float) or stamp < since:
            continue
        if name.search(json.dumps(entry)):  # the name itself, not one ending with it
            found.append(f"{entry.get('msg', '')}: {entry.get('error', '')}".strip(": "))
    return found


def read_log(path: Path) -> list[dict[str, Any]]:
    """Return the JSON entries at the end of a Caddy log file (none if it is missing)."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - LOG_TAIL))
            raw = handle.read()
    except OSError:
        return []
    lines = raw.decode(errors="replace").splitlines()
    if size > LOG_TAIL:
        lines = lines[1:]  # the first one is cut
    entries = []
    for line in lines:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


class CaddyProcess:
    """Caddy run as StackHub's child: started with only the admin socket, output kept."""

    def __init__(self, binary: str, home: Path, socket: Path) -> None:
        """Run `binary` with its files under `home`, admin API on `socket`."""
        self.binary = binary
        self.home = home
        self.socket = socket
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: collections.deque[dict[str, Any]] = collections.deque(maxlen=400)
        self._reader: asyncio.Task[None] | None = None
        self.exited: asyncio.Task[int] | None = None
        """Ends with the exit status when the child ends (one waiter per start)."""

    @property
    def running(self) -> bool:
        """Tell whether the child is alive."""
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        """Start Caddy and wait until its admin socket answers; raise GatewayUnavailable."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o700)
        boot = self.home / "boot.json"
        boot.write_text(json.dumps({"admin": {"listen": f"unix/{self.socket}",
                                              "config": {"persist": False}}}))
        self.socket.unlink(missing_ok=True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
               "XDG_DATA_HOME": str(self.home / "data"),
               "XDG_CONFIG_HOME": str(self.home / "config"), "GOGC": gateway_gogc()}
        pact = death_pact()  # Caddy dies with the server, even by SIGKILL (ports freed)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *pact, self.binary, "run", "--config", str(boot),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env=env, cwd=str(self.home),
                preexec_fn=None if pact else _die_with_parent)
        except OSError as err:
            raise GatewayUnavailable(f"cannot run {self.binary}: {err}") from err
        self._reader = asyncio.create_task(self._read(self.proc), name="caddy-log")
        self.exited = asyncio.create_task(self.proc.wait(), name="caddy-exit")
        admin = CaddyAdmin(self.socket)
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        while asyncio.get_running_loop().time() < deadline:
            if self.proc.returncode is not None:
                break
            if self.socket.exists() and await admin.alive():
                log.info("gateway: caddy started (pid %s)", self.proc.pid)
                return
            await asyncio.sleep(0.05)
        await self.stop()
        raise GatewayUnavailable(f"caddy did not start: {self.last_error() or 'no output'}")

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            text = raw.decode(errors="replace").strip()
            try:
                entry = json.loads(text)
            except ValueError:
                entry = {"level": "info", "msg": text}
            if isinstance(entry, dict):
                self.lines.append(entry)
                if entry.get("level") in ("error", "fatal") or \
                        str(entry.get("msg", "")).startswith("http: panic serving"):
                    # Go logs a handler's panic (e.g. in the admin API's /load) at info
                    log.warning("caddy: %s %s", entry.get("msg"), entry.get("error", ""))

    def last_error(self, identifier: str | None = None) -> str | None:
        """Return Caddy's last logged error (about `identifier`, if given)."""
        return last_error(self.lines, identifier)

    def errors(self, identifier: str, since: float) -> list[str]:
        """Return Caddy's errors about `identifier` from `since` (Unix time), oldest first."""
        return errors(self.lines, identifier, since)

    async def wait(self) -> int:
        """Wait for the child to end; return its exit status."""
        assert self.proc is not None
        return await self.proc.wait()

    async def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL)."""
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None


Reapply = Callable[[], Awaitable[None]]


class CaddyGateway:
    """Caddy, started and supervised by StackHub (or a system Caddy reused through its socket)."""

    def __init__(self, home: Path, *, external: Path | None = None,
                 binary: str | None = None) -> None:
        """Keep Caddy's files under `home`; reuse the admin socket `external` if given."""
        self.home = home
        self.external = external
        self.socket = external or home / "admin.sock"
        self.admin = CaddyAdmin(self.socket)
        self.binary = binary if binary is not None else caddy_binary()
        self.process: CaddyProcess | None = None
        self.restarts = 0
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self._restarting = False
        """The watcher is starting a dead child again (from its exit to its admin answering)."""

    @property
    def listen(self) -> str:
        """Return the admin address to keep in every rendered config."""
        return f"unix/{self.socket}"

    @property
    def storage(self) -> Path:
        """Return where Caddy keeps certificates and its CA."""
        return self.home / "data" / "caddy"

    def available(self) -> str | None:
        """Return why the gateway cannot run here, or None."""
        if self.external is None and self.binary is None:
            return ("caddy is not installed: install Debian's caddy package (scripts/bootstrap "
                    "does) or name a running Caddy's admin socket in STACKHUB_CADDY_ADMIN")
        return None

    async def start(self, reapply: Reapply) -> None:
        """Start (or find) Caddy and keep watching it; `reapply` loads the config again."""
        why = self.available()
        if why is not None:
            raise GatewayUnavailable(why)
        self._stopping = False
        if self.external is None and self.process is not None and not self.process.running \
                and self._watching():
            # the watcher starts the dead child again: a second child would hold the ports and
            # leave the watched one unable to load any config
            log.info("gateway: caddy is being started again; waiting for it")
            if not await self._restarted(self.restarts):
                raise GatewayUnavailable(f"caddy did not start again: "
                                         f"{self.process.last_error() or 'no output'}")
        elif self.external is None and (self.process is None or not self.process.running):
            assert self.binary is not None
            self.process = CaddyProcess(self.binary, self.home, self.socket)
            await self.process.start()
        elif self.external is not None and not await self.admin.alive():
            raise GatewayUnavailable(f"no Caddy answers on STACKHUB_CADDY_ADMIN={self.external}")
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
        if self._watch is None or self._watch.done():
            self._watch = asyncio.create_task(self._supervise(reapply), name="caddy-watch")

    @property
    def running(self) -> bool:
        """Tell whether the gateway is started (its child alive, or a system one watched)."""
        if self._watch is None or self._watch.done():
            return False
        return self.external is not None or (self.process is not None and self.process.running)

    async def _supervise(self, reapply: Reapply) -> None:
        """Restart a dead (or hung) child and re-load the config; re-load a system Caddy that
        lost it."""
        delay = 0.2
        misses = 0
        while not self._stopping:
            try:
                exited = self.process.exited if self.process is not None else None
                if exited is not None:
                    done, _ = await asyncio.wait({exited}, timeout=CHECK_EVERY)
                    if done:
                        if self._stopping:
                            return
                        assert self.process is not None
                        log.warning("gateway: caddy exited (%s); starting it again",
                                    exited.result())
                        self._restarting = True
                        misses = 0
                        try:
                            await self.process.stop()
                            await asyncio.sleep(delay)
                            await self.process.start()
                            self.restarts += 1
                        finally:
                            self._restarting = False
                        await reapply()
                        delay = 0.2
                        continue
                else:
                    await asyncio.sleep(CHECK_EVERY)
                try:
                    loaded = await self.admin.loaded()
                except GatewayUnavailable:
                    misses += 1
                    if self._kill_hung(misses):
                        continue  # its exit is seen above: started again, config re-loaded
                    raise
                misses = 0
                if not loaded:
                    log.warning("gateway: caddy lost StackHub's config; loading it again")
                    await reapply()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # keep watching whatever happens
                log.warning("gateway: %s", getattr(err, "message", err))
                delay = min(delay * 2, 5.0)
                await self._pause(delay)

    def _kill_hung(self, misses: int) -> bool:
        """Kill StackHub's child (never a system Caddy) once its admin API has missed
        `HANG_CHECKS` checks in a row; tell whether it was killed."""
        proc = self.process.proc if self.process is not None else None
        if self.external is not None or proc is None or proc.returncode is not None or \
                misses < HANG_CHECKS:
            return False
        log.warning("gateway: caddy (pid %s) left %s admin checks in a row unanswered: it hangs; "
                    "killing it to start it again", proc.pid, misses)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()  # SIGKILL: a stopped process acts on no other signal until continued
        return True

    async def _pause(self, seconds: float) -> None:
        """Sleep `seconds`, waking early when the running child exits (to start it again)."""
        exited = self.process.exited if self.process is not None else None
        if exited is None or exited.done():
            await asyncio.sleep(seconds)
        else:
            await asyncio.wait({exited}, timeout=seconds)

    def _watching(self) -> bool:
        """Tell whether the watcher runs (it starts a dead child again itself)."""
        return self._watch is not None and not self._watch.done() and not self._stopping

    async def _restarted(self, seen: int) -> bool:
        """Wait until the watcher has started the child again (`restarts` past `seen`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RESTART_WAIT
        while self._watching() and loop.time() < deadline:
            if self.restarts > seen and self.process is not None and self.process.running:
                return True
            await asyncio.sleep(0.05)
        return False

    async def _died(self, exited: asyncio.Task[int] | None) -> bool:
        """Tell whether a load failed because the child died (`exited`: its exit when the load
        was sent) or was being started again; never inside the watcher (it restarts it)."""
        if self.external is not None or not self._watching() or \
                asyncio.current_task() is self._watch:
            return False
        if self._restarting:
            return True
        if exited is None:
            return False
        if not exited.done():  # the socket closed a moment before the exit is seen
            await asyncio.wait({exited}, timeout=1.0)
        return exited.done()

    async def load(self, config: dict[str, Any]) -> None:
        """Load a rendered config; if the child dies meanwhile, into the one started next.

        A change must not fail (nor be lost) because Caddy crashed under it: the watcher
        starts it again, and the change's load goes to the new child once it answers (the
        watcher's own re-load follows, with the same database).
        """
        seen = self.restarts
        exited = self.process.exited if self.process is not None else None
        try:
            await self.admin.load(config)
        except _Refused:
            raise
        except GatewayUnavailable:
            if not await self._died(exited) or not await self._restarted(seen):
                raise
            log.warning("gateway: caddy died during a load; loading into the new one")
            await self.admin.load(config)

    @property
    def log(self) -> Path | None:
        """Return the file a system Caddy writes its certificate errors to (None: a child)."""
        return self.home / "logs" / "caddy-errors.log" if self.external is not None else None

    def _entries(self) -> Iterable[dict[str, Any]]:
        """Return Caddy's log: the child's output, or a system Caddy's error log file."""
        if self.process is not None:
            return self.process.lines
        return read_log(self.log) if self.log is not None else []

    def last_error(self, identifier: str | None = None) -> str | None:
        """Return Caddy's last logged error (about `identifier`)."""
        return last_error(self._entries(), identifier)

    def errors(self, identifier: str, since: float) -> list[str]:
        """Return Caddy's errors about `identifier` since `since` (Unix time)."""
        return errors(self._entries(), identifier, since)

    async def stop(self) -> None:
        """Stop watching, and stop Caddy if StackHub started it."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch
            self._watch = None
        if self.process is not None:
            await self.process.stop()
