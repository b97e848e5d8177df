"""Serve the proxy domain: the base domain, automatic names, custom domains and the gateway.

The gateway's config is always derived: every change (a base set, a domain bound or removed,
an operation on an instance finished) re-renders Caddy's whole config from the database and
loads it once; changes arriving together are batched into one load (`schedule`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import re
import secrets
import ssl
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from stackhub import faults, fsutil
from stackhub.adapters import caddy, lego
from stackhub.adapters.dns import DnsResolver, Resolver
from stackhub.apps.models import LOOPBACK_FILE, InstanceRead, InstanceStatus, OperationRead
from stackhub.apps.service import AppsService
from stackhub.config import Paths
from stackhub.errors import (
    AlreadyExists,
    Conflict,
    GatewayUnavailable,
    Invalid,
    NotFound,
    StackHubError,
)
from stackhub.events import EventBus, Subscription
from stackhub.operations.runner import OperationKind, Outcome, Run, Runner, Undo, register
from stackhub.proxy import dial, names, pages, providers
from stackhub.proxy.models import (
    BaseRead,
    DnsCheck,
    DnsProblem,
    DnsRecord,
    DnsStatus,
    DomainError,
    DomainErrorDetail,
    DomainFailure,
    DomainKind,
    DomainRead,
    DomainState,
    GatewayRead,
    ProtectionRead,
    RecheckRead,
    TlsMode,
    WildcardRead,
)
from stackhub.proxy.records import DomainRecord, DomainRecords

log = logging.getLogger("stackhub.gateway")
DEBOUNCE = 0.3
"""Seconds to gather changes into one load of the gateway's config."""
SAFE_PATH = re.compile(r"/[\x21-\x7e]{0,200}")
"""A main path the gateway may redirect to (printable ASCII, no spaces)."""
BASE_KEY = "base"
TLS_KEY = "tls"
WARN_DAYS = 14
"""A certificate expiring within this many days is flagged (renewals should have run)."""
RECHECK = 6 * 3600.0
"""Seconds between re-checks of custom domains' DNS and certificates (STACKHUB_DOMAIN_RECHECK)."""
FORWARD_PATH = "/api/auth/forward"
WILDCARD_PROBE = "stackhub-wildcard-check"
"""The name under a DNS-01 base looked up to check its ``*.<base>`` record."""
PROTECT = register(OperationKind("protect", "changing the app's sign-in", None, None, None,
                                 hint="run `stackhub app protect NAME` again (`--off` to take "
                                 "the sign-in away)"))
"""Put an app behind the sign-in or take it out (steps route, publish); status unchanged."""


def _flag(value: str) -> bool | None:
    text = value.strip().lower()
    if text in ("1", "on", "yes", "true"):
        return True
    if text in ("0", "off", "no", "false"):
        return False
    return None


def _port(env: dict[str, str], key: str, default: int) -> int:
    text = env.get(key, "").strip()
    if not text:
        return default
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise Invalid(f"{key}={text!r} must be a port number")
    return int(text)


@dataclass(frozen=True)
class GatewaySettings:
    """The gateway's settings from the environment (see docs/cli.md, "Domains")."""

    switch: bool | None = None
    """STACKHUB_GATEWAY: True always on, False always off, None: on once a domain exists."""
    http_port: int = 80
    https_port: int = 443
    admin: Path | None = None
    acme_ca: str = caddy.LETS_ENCRYPT
    acme_roots: tuple[str, ...] = ()
    acme_email: str = ""
    caa_id: str | None = names.LETS_ENCRYPT_CAA
    addresses: tuple[str, ...] = ()
    timeout: float = 120.0
    resolver: str | None = None
    recheck: float = RECHECK
    dial: str = dial.CONTAINER
    """STACKHUB_GATEWAY_DIAL: ``container`` (the default: its main container's address on its
    project network, no docker-proxy in the path, when `dial` proves it is the app's and
    reachable) or ``port`` (always the app's published 127.0.0.1 port)."""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> GatewaySettings:
        """Read the STACKHUB_* variables."""
        env = dict(os.environ) if env is None else env
        ca = env.get("STACKHUB_ACME_CA", "").strip() or caddy.LETS_ENCRYPT
        roots = tuple(p for p in env.get("STACKHUB_ACME_CA_ROOT", "").split(os.pathsep) if p)
        default_caa = names.LETS_ENCRYPT_CAA if ca == caddy.LETS_ENCRYPT else None
        timeout = env.get("STACKHUB_DOMAIN_TIMEOUT", "").strip()
        recheck = env.get("STACKHUB_DOMAIN_RECHECK", "").strip()
        return cls(
            switch=_flag(env.get("STACKHUB_GATEWAY", "")),
            http_port=_port(env, "STACKHUB_HTTP_PORT", 80),
            https_port=_port(env, "STACKHUB_HTTPS_PORT", 443),
            admin=Path(env["STACKHUB_CADDY_ADMIN"]) if env.get("STACKHUB_CADDY_ADMIN") else None,
            acme_ca=ca, acme_roots=roots, acme_email=env.get("STACKHUB_ACME_EMAIL", "").strip(),
            caa_id=env.get("STACKHUB_ACME_CAA", "").strip() or default_caa,
            addresses=tuple(a.strip() for a in env.get("STACKHUB_PUBLIC_ADDRESS", "").split(",")
                            if a.strip()),
            timeout=float(timeout) if timeout.replace(".", "", 1).isdigit() else 120.0,
            resolver=env.get("STACKHUB_DNS_RESOLVER", "").strip() or None,
            recheck=max(float(recheck), 1.0) if recheck.replace(".", "", 1).isdigit()
            else RECHECK,
            dial=dial.mode(env.get("STACKHUB_GATEWAY_DIAL", "")))


def box_addresses(settings: GatewaySettings) -> list[str]:
    """Return this box's addresses: STACKHUB_PUBLIC_ADDRESS, else its interfaces' global ones."""
    if settings.addresses:
        return list(settings.addresses)
    found: list[str] = []
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            address = entry.address.split("%")[0]
            with contextlib.suppress(ValueError):
                ip = ipaddress.ip_address(address)
                if not (ip.is_loopback or ip.is_link_local or ip.is_multicast):
                    found.append(str(ip))
    return sorted(set(found))


def who_listens(port: int) -> str | None:
    """Name the program listening on a TCP port, if it can be found."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections("tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid is None:
                    return "another program"
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(conn.pid)
                    return f"{proc.name()} (pid {conn.pid})"
    return None


@dataclass
class Served:
    """What serving a domain over HTTPS showed: the certificate and the first line."""

    issuer: str
    expires_at: str
    status: str
    page: str | None = None
    """The gateway's own page answered instead of the app (caddy.PAGES), or None."""

    def app_problem(self, instance: str) -> DomainFailure | None:
        """Say why the app itself did not answer (the gateway's page came instead), or None."""
        status = DomainErrorDetail(status=self.status)
        if self.page == caddy.STOPPED:
            return DomainFailure(f"the certificate is in place, but the gateway shows its 'app "
                                 f"unavailable' page ({self.status}): {instance} is stopped or "
                                 f"has no web port; start it (stackhub app start {instance})",
                                 DomainError.APP_UNAVAILABLE, status)
        if self.page == caddy.UNREACHABLE:
            return DomainFailure(f"the certificate is in place, but {instance} does not answer: "
                                 f"the gateway shows its 'App not answering' page "
                                 f"({self.status}); check the app (stackhub app logs "
                                 f"{instance})", DomainError.APP_NOT_ANSWERING, status)
        return None


@dataclass(frozen=True)
class Certificate:
    """A certificate Caddy keeps for a name."""

    issuer: str
    expires_at: datetime
    issued_at: datetime

    def warn_window(self) -> timedelta:
        """Return how long before expiry to warn: 14 days, or less for short-lived leaves.

        Caddy renews when a third of the lifetime is left; the internal CA's leaves live about
        12 h, so a fixed 14 days would flag every LAN name. Warn when renewal is overdue by
        half its window (a sixth of the lifetime left), at most 14 days before expiry.
        """
        return min(timedelta(days=WARN_DAYS), (self.expires_at - self.issued_at) / 6)


def read_certificate(storage: Path, host: str) -> Certificate | None:
    """Return the latest-expiring certificate Caddy stores for `host`, or None."""
    best: Certificate | None = None
    for path in storage.glob(f"certificates/*/{host}/{host}.crt"):
        from cryptography import x509  # 7.7 MB resident: only once there is a certificate

        with contextlib.suppress(OSError, ValueError):
            cert = x509.load_pem_x509_certificate(path.read_bytes())
            names_ = [a.value for a in cert.issuer if a.oid in (
                x509.NameOID.COMMON_NAME, x509.NameOID.ORGANIZATION_NAME)]
            found = Certificate(", ".join(str(n) for n in names_),
                                cert.not_valid_after_utc, cert.not_valid_before_utc)
            if best is None or found.expires_at > best.expires_at:
                best = found
    return best


def expiry(expires_at: str | None, moment: datetime | None = None,
           window: timedelta = timedelta(days=WARN_DAYS)) -> tuple[int | None, str | None]:
    """Return whole days left and the warning for a certificate's expiry (ISO 8601).

    `window`: how long before expiry to warn (Certificate.warn_window for stored ones).
    """
    if not expires_at:
        return None, None
    try:
        end = datetime.fromisoformat(expires_at)
    except ValueError:
        return None, None
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    left = end - (moment or datetime.now(UTC))
    days = left.days
    if left <= timedelta(0):
        return days, f"the certificate expired on {end.date().isoformat()}: renewal is failing"
    if left < window:
        when = f"in {days} days" if days >= 1 else f"in {int(left.total_seconds() // 3600)} h"
        return days, (f"the certificate expires {when} ({end.date().isoformat()}): "
                      "renewal should have happened by now; check DNS and port 80")
    return days, None


@dataclass
class _State:
    error: str | None = None
    dirty: asyncio.Event = field(default_factory=asyncio.Event)


class ProxyService:
    """The proxy domain's entry points, used by the API and the domain operation."""

    def __init__(self, *, paths: Paths, records: DomainRecords, apps: AppsService,
                 runner: Runner, bus: EventBus, settings: GatewaySettings | None = None,
                 gateway: caddy.CaddyGateway | None = None,
                 resolver: Resolver | None = None) -> None:
        """Keep the collaborators; nothing starts before `start`."""
        self.paths = paths
        self.records = records
        self.apps = apps
        self.runner = runner
        self.bus = bus
        self.settings = settings or GatewaySettings.from_env()
        self.gateway = gateway or caddy.CaddyGateway(paths.root / "gateway",
                                                     external=self.settings.admin)
        self._resolver = resolver
        self.ask_token = secrets.token_urlsafe(24)
        self._lock: asyncio.Lock | None = None
        self._state: _State | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._sub: Subscription | None = None
        self.loads = 0
        self._hosts: dict[str, str] | None = None
        self._dials: dict[str, str] = {}
        """Instance -> its main container's ``IP:PORT`` for the next load (container dial)."""
        self._loaded: dict[str, str] = {}
        """Instance -> the ``IP:PORT`` Caddy was last loaded with (container dial)."""
        self._why: dict[str, str] = {}
        """Instance -> why its published port is dialled (logged once per change)."""
        self.last_recheck: RecheckRead | None = None
        runner.after_crash(PROTECT.name, self._protect_after_crash)
        self.providers = providers.ProviderStore(paths.secrets)
        self.lego_path = paths.secrets / "lego"
        """lego's folder (0700): the CA account and the wildcard certificates."""
        self.wildcard_error: str | None = None
        self.wildcard_dns: DnsCheck | None = None
        self.dns_checks: dict[str, DnsCheck] = {}
        """Custom domain -> its last DNS check in this process (`DomainRead.dns_status`)."""
        self.periodic: list[Callable[[], Coroutine[Any, Any, None]]] = []
        """More loops to run while the server runs (the wildcard's daily renewal check)."""
        self.sleep: Callable[[float], Coroutine[Any, Any, None]] = asyncio.sleep
        """How the re-check loop waits (a fake clock's in tests)."""

    # -- settings ---------------------------------------------------------------------------
    @property
    def resolver(self) -> Resolver:
        """Return the DNS resolver (made on first use)."""
        if self._resolver is None:
            self._resolver = DnsResolver(self.settings.resolver or "")
        return self._resolver

    def base(self) -> tuple[str | None, TlsMode | None]:
        """Return the base domain and its TLS mode."""
        base = self.records.setting(BASE_KEY)
        mode = self.records.setting(TLS_KEY)
        return base, (TlsMode(mode) if base and mode else None)

    def enabled(self) -> bool:
        """Tell whether the gateway should run."""
        if self.settings.switch is not None:
            return self.settings.switch
        return self.base()[0] is not None or bool(self.records.all())

    def _usable(self) -> None:
        """Raise GatewayUnavailable when the gateway cannot run here."""
        if self.settings.switch is False:
            raise Conflict("the gateway is turned off (STACKHUB_GATEWAY=0): unset it to use "
                           "domains")
        why = self.gateway.available()
        if why is not None:
            raise GatewayUnavailable(why)

    def usable(self) -> None:
        """Raise GatewayUnavailable (or Conflict) when the gateway cannot run here."""
        self._usable()

    def read_base(self) -> BaseRead:
        """Return the base domain and the gateway's state."""
        base, mode = self.base()
        dns = self.wildcard_dns if base and mode == TlsMode.ACME and self.wildcard_dns and \
            names.under(self.wildcard_dns.domain, base) else None
        return BaseRead(base=base, tls=mode, console=f"{names.CONSOLE}.{base}" if base else None,
                        gateway=self.gateway_read(),
                        wildcard=self.wildcard(base) if base and mode == TlsMode.DNS01 else None,
                        dns=dns)

    def wildcard(self, base: str, moment: datetime | None = None) -> WildcardRead:
        """Return the wildcard certificate of `base` (DNS-01) and the records to create."""
        pair = lego.read(self.lego_path, base)
        records = [DnsRecord(type="AAAA" if ":" in a else "A", name=f"*.{base}", value=a)
                   for a in box_addresses(self.settings)]
        records += [r.model_copy(update={"name": base}) for r in records]
        dns = self.wildcard_dns if self.wildcard_dns and names.under(
            self.wildcard_dns.domain, base) else None
        if pair is None:
            return WildcardRead(names=[f"*.{base}", base], records=records,
                                error=self.wildcard_error, dns=dns)
        days, warning = expiry(pair.not_after.isoformat(), moment)
        renew = pair.not_after - timedelta(days=lego.RENEW_DAYS)
        return WildcardRead(names=list(pair.names), issuer=pair.issuer,
                            expires_at=pair.not_after.isoformat(), expires_in_days=days,
                            renew_from=renew.isoformat(), warning=warning, records=records,
                            error=self.wildcard_error, dns=dns)

    def gateway_read(self) -> GatewayRead:
        """Return the gateway's state."""
        state = self._state
        return GatewayRead(enabled=self.enabled(), available=self.gateway.available() is None,
                           running=self.gateway.running,
                           mode="system" if self.settings.admin else "child",
                           http_port=self.settings.http_port,
                           https_port=self.settings.https_port, restarts=self.gateway.restarts,
                           error=state.error if state else None)

    async def set_base(self, base: str, tls: str) -> BaseRead:
        """Set the base domain, then load the gateway's config (starting it if needed)."""
        self._usable()
        name = names.normalise(base, what="base domain")
        clash = [d.name for d in self.records.all() if names.under(d.name, name)]
        if clash:
            raise AlreadyExists(f"{', '.join(clash)} is bound as a custom domain under "
                                f"{name}; remove it first (names under the base are automatic)")
        previous = self.base()
        self.records.set_setting(BASE_KEY, name)
        self.records.set_setting(TLS_KEY, names.tls_for(name, tls).value)
        try:
            await self.apply()
        except StackHubError:
            self.records.set_setting(BASE_KEY, previous[0])
            self.records.set_setting(TLS_KEY, previous[1].value if previous[1] else None)
            with contextlib.suppress(StackHubError):
                await self.apply()
            raise
        await self._check_public_base()
        return self.read_base()

    async def _check_public_base(self) -> None:
        """Check that ``*.<base>`` reaches this box when HTTP-01 needs it; warn if not.

        Not a refusal: a base can be set before its DNS is ready. The check is shown with the
        base (`BaseRead.dns`: the problem and the record to create) and redone by `recheck`.
        """
        base, mode = self.base()
        if base is None or mode != TlsMode.ACME:
            return
        try:
            check = await self.check_wildcard(base)
        except StackHubError as err:  # the base is set: a failed look-up only goes unshown
            log.warning("gateway: could not check *.%s: %s", base, err.message)
            return
        if not check.ok:
            log.warning("gateway: %s: %s (HTTP-01 certificates under %s fail until then)",
                        check.problem, check.fix, base)

    async def clear_base(self) -> BaseRead:
        """Remove the base domain (automatic names and the console's name go away)."""
        self.records.set_setting(BASE_KEY, None)
        self.records.set_setting(TLS_KEY, None)
        await self.apply()
        return self.read_base()

    # -- listing ----------------------------------------------------------------------------
    def _url(self, name: str) -> str:
        port = self.settings.https_port
        return f"https://{name}" + ("" if port == 443 else f":{port}")

    def domains(self, instance: str | None = None) -> list[DomainRead]:
        """Return every name the gateway serves (of one instance), automatic ones first."""
        base, mode = self.base()
        found: list[DomainRead] = []
        instances = self.apps.all()
        known = {i.name: i for i in instances}
        if instance is not None and instance not in known and not self.records.all(instance):
            raise NotFound(f"no instance named {instance!r}")
        running = self.gateway.running
        protected = self.records.protected()
        wild = self.wildcard_dns if base and self.wildcard_dns and names.under(
            self.wildcard_dns.domain, base) else None
        for inst in instances:
            if base is None or instance not in (None, inst.name):
                continue
            upstream, why = target(inst)
            host = f"{inst.name}.{base}"
            error = why if running else self._not_running()
            cert = self._wildcard_certificate(base) if mode == TlsMode.DNS01 else \
                read_certificate(self.gateway.storage, host)
            expires = cert.expires_at.isoformat() if cert else None
            days, warning = expiry(expires, window=cert.warn_window()) if cert else (None, None)
            found.append(DomainRead(
                name=host, instance=inst.name, kind=DomainKind.AUTOMATIC,
                dns_status=dns_status(wild) if wild else None,
                record=wild.expected[0] if wild and not wild.ok and wild.expected else None,
                state=DomainState.ACTIVE if running else DomainState.PENDING,
                url=self._url(host), target=upstream, tls=mode or TlsMode.INTERNAL,
                issuer=cert.issuer if cert else None, expires_at=expires,
                expires_in_days=days, warning=warning, protected=inst.name in protected,
                error=error.text if error else None, error_code=error.code if error else None,
                error_detail=error.detail if error else None, created_at=inst.created_at))
        for row in self.records.all(instance):
            found.append(self._custom(row, known.get(row.instance), protected))
        return found

    async def check_wildcard(self, base: str) -> DnsCheck:
        """Look up a name under `base`: does the ``*.<base>`` record lead to this box?"""
        name = f"{WILDCARD_PROBE}.{base}"
        answer = await asyncio.to_thread(self.resolver.lookup, name)
        box = box_addresses(self.settings)
        expected = [DnsRecord(type="AAAA" if ":" in a else "A", name=f"*.{base}", value=a)
                    for a in box]
        check = DnsCheck(domain=name, ok=False, cnames=list(answer.cnames),
                         addresses=list(answer.addresses), box_addresses=box,
                         expected=expected, record_name=f"*.{base}")
        wanted = " or ".join(r.text() for r in expected) or "an A record to this box"
        if answer.error is not None:
            check.problem_code, check.lookup_error = DnsProblem.LOOKUP_FAILED, answer.error
            check.problem = f"{answer.error}; StackHub could not check *.{base}"
        elif not answer.addresses:
            check.problem_code = DnsProblem.NO_RECORD
            check.problem = f"*.{base} has no DNS record"
        elif not set(answer.addresses) <= set(box):
            check.problem_code = DnsProblem.POINTS_ELSEWHERE
            check.problem = (f"*.{base} points at {', '.join(answer.addresses)}, not at this "
                             f"box ({', '.join(box) or 'address unknown'})")
        else:
            check.ok = True
        check.fix = None if check.ok else f"create {wanted} at the DNS provider"
        self.wildcard_dns = check
        return check

    def _wildcard_certificate(self, base: str) -> Certificate | None:
        pair = lego.read(self.lego_path, base)
        return Certificate(pair.issuer, pair.not_after, pair.not_before) if pair else None

    def _not_running(self) -> DomainFailure:
        """Return why the gateway serves nothing: its last error, or that it is not running."""
        state = self._state
        if state and state.error:
            return DomainFailure(state.error, DomainError.GATEWAY_DOWN,
                                 DomainErrorDetail(detail=state.error))
        if self.enabled():
            return DomainFailure("the gateway is not running", DomainError.GATEWAY_STOPPED)
        return DomainFailure("the gateway is not running (turned off until a domain exists)",
                             DomainError.GATEWAY_OFF)

    def _custom(self, row: DomainRecord, inst: InstanceRead | None,
                protected: set[str]) -> DomainRead:
        state, error = DomainState(row.state), row.error
        code, detail = stored = row.failure()
        cert = read_certificate(self.gateway.storage, row.name)
        issuer = cert.issuer if cert else row.issuer
        expires = cert.expires_at.isoformat() if cert else row.expires_at
        days, warning = expiry(expires, window=cert.warn_window()) if cert else expiry(expires)
        upstream = None
        if inst is None:
            state, error = DomainState.DANGLING, (f"instance {row.instance!r} was removed; "
                                                  "remove this domain or its DNS record")
            code, detail = DomainError.INSTANCE_REMOVED, None
        else:
            upstream, why = target(inst)
            if error is None and why is not None:
                error, code, detail = why.text, why.code, why.detail
        dns, record = self._dns_of(row, inst, stored[1])
        return DomainRead(name=row.name, instance=row.instance, kind=DomainKind.CUSTOM,
                          dns_status=dns, record=record,
                          state=state, url=self._url(row.name), target=upstream,
                          tls=TlsMode.ACME, issuer=issuer, expires_at=expires,
                          checked_at=row.checked_at, error=error, error_code=code,
                          error_detail=detail, created_at=row.created_at,
                          expires_in_days=days, warning=warning,
                          protected=row.instance in protected)

    def _dns_of(self, row: DomainRecord, inst: InstanceRead | None,
                detail: DomainErrorDetail | None) -> tuple[DnsStatus, DnsRecord | None]:
        """Return a custom domain's DNS status (its last check, else its state, with the stored
        error's values) and the fix."""
        check = self.dns_checks.get(row.name)
        if check is not None:
            status = dns_status(check)
        elif row.state == DomainState.ACTIVE:
            status = DnsStatus.OK
        elif row.state == DomainState.DANGLING:
            if detail is not None and detail.dns is not None:  # the check that flagged it
                status = dns_status(detail.dns)
            else:  # flagged before errors kept their codes
                status = DnsStatus.MISSING if "has no DNS record" in (row.error or "") \
                    else DnsStatus.WRONG
        else:
            status = DnsStatus.UNCHECKED
        if inst is None or status not in (DnsStatus.MISSING, DnsStatus.WRONG) or (
                check is not None and check.problem_code == DnsProblem.CAA_FORBIDS):
            return status, None
        base = self.base()[0]
        expected = names.expected_records(row.name, f"{row.instance}.{base}" if base else None,
                                          box_addresses(self.settings))
        return status, expected[0] if expected else None

    # -- the config -------------------------------------------------------------------------
    def _api_upstream(self) -> str | None:
        try:
            url = str(json.loads(self.paths.server_info.read_text())["url"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return url.split("://", 1)[-1].rstrip("/")

    def spec(self) -> caddy.GatewaySpec:
        """Build the gateway's desired state from the database."""
        base, mode = self.base()
        routes: list[caddy.Route] = []
        internal: list[str] = []
        acme: list[str] = []
        custom: dict[str, list[str]] = {}
        for row in self.records.all():
            if row.state in (DomainState.ACTIVE, DomainState.PENDING, DomainState.DANGLING):
                custom.setdefault(row.instance, []).append(row.name)
        api = self._api_upstream()
        protected = self.records.protected()
        pems: list[caddy.Pem] = []
        # DNS-01: the wildcard is loaded inline (Caddy skips automation for the names it
        # covers, so no HTTP-01); without it yet, the internal CA answers (never a public CA)
        wild = lego.read(self.lego_path, base) if base and mode == TlsMode.DNS01 else None
        if wild is not None:
            pems.append(caddy.Pem(certificate=wild.certificate, key=wild.key))
        own = internal if mode == TlsMode.INTERNAL or (mode == TlsMode.DNS01 and wild is None) \
            else [] if mode == TlsMode.DNS01 else acme
        for inst in self.apps.all():
            hosts = [f"{inst.name}.{base}"] if base else []
            own.extend(hosts)
            hosts += custom.get(inst.name, [])
            acme += custom.get(inst.name, [])
            if hosts:
                upstream, why = target(inst)
                address = self._dials.get(inst.name) if upstream else None
                title, title_zh, page_zh = pages.words(why, inst.name)
                main = inst.main
                guard = None
                if inst.name in protected and api:
                    guard = caddy.ForwardAuth(dial=api,
                                              uri=f"{FORWARD_PATH}?token={self.ask_token}")
                routes.append(caddy.Route(id=f"app-{inst.name}", hosts=tuple(hosts),
                                          upstream=address or upstream,
                                          fallback=upstream if address else None,
                                          page=why.text if why else None, title=title,
                                          page_zh=page_zh, title_zh=title_zh,
                                          path=main.path if main and SAFE_PATH.fullmatch(
                                              main.path) else "/",
                                          tls=main is not None and main.scheme == "https",
                                          auth=guard))
        if base and api:
            console = f"{names.CONSOLE}.{base}"
            routes.append(caddy.Route(id="console", hosts=(console,), upstream=api))
            own.append(console)
        ask = None
        if api and acme:
            ask = f"http://{api}/api/gateway/ask?token={self.ask_token}"
        settings = self.settings
        return caddy.GatewaySpec(
            admin=self.gateway.listen, http_port=settings.http_port,
            https_port=settings.https_port, storage=self.gateway.storage, routes=tuple(routes),
            internal=tuple(internal), acme=tuple(acme),
            ca=caddy.Acme(ca=settings.acme_ca, email=settings.acme_email,
                          roots=settings.acme_roots), ask=ask, certificates=tuple(pems),
            log=self.gateway.log)

    def allows(self, domain: str, token: str) -> bool:
        """Answer Caddy's on-demand ``ask``: only names StackHub serves get certificates."""
        if not secrets.compare_digest(token.encode(), self.ask_token.encode()):
            return False
        return domain.lower() in self.spec_hosts()

    def spec_hosts(self) -> set[str]:
        """Return every host the gateway routes."""
        return {h for r in self.spec().routes for h in r.hosts}

    async def apply(self) -> None:
        """Render the whole config from the database and load it (starting Caddy if needed)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
            self._state = _State()
        assert self._state is not None
        async with self._lock:
            try:
                if not self.enabled():
                    if self.gateway.running:
                        await self.gateway.stop()
                    self._dials = self._loaded = {}  # nothing is dialled any more
                    return
                self._usable()
                if not self.gateway.running:
                    await self.gateway.start(self._reapply)
                await self._load()
            except GatewayUnavailable as err:
                self._state.error = self._explain(err)
                raise GatewayUnavailable(self._state.error) from err
            self._state.error = None

    def _explain(self, err: GatewayUnavailable) -> str:
        message = err.message
        if "address already in use" in message:
            for port in (self.settings.http_port, self.settings.https_port):
                if f":{port}:" in message or f":{port} " in message:
                    holder = who_listens(port)
                    message = (f"port {port} is taken by {holder or 'another program'}: stop "
                               f"it, or set STACKHUB_HTTP_PORT/STACKHUB_HTTPS_PORT ({message})")
                    break
        return message

    def dialled(self) -> dict[str, set[str]]:
        """Return instance -> the container IPs the gateway dials or is about to (allocator)."""
        loaded, pending = self._loaded, self._dials  # read once: the loop replaces them
        found: dict[str, set[str]] = {}
        for dials in (loaded, pending):
            for instance, address in dials.items():
                found.setdefault(instance, set()).add(address.rpartition(":")[0])
        return found

    def _address(self, inst: InstanceRead, links: dial.Links,
                 owned: dict[str, list[str]]) -> str | None:
        """Return the main container's ``IP:PORT`` when `dial` allows it, else None.

        Read from the status cache's container list (the engine lists each container's
        networks and addresses): a load asks the engine nothing per app.
        """
        main = inst.main
        if main is None or inst.status == InstanceStatus.STOPPED:
            return None
        box = dial.main_container(self.apps.status.containers(inst.name), main.service)
        if box is None or box.state != "running":
            return None
        address, why = dial.container_address(box, box.project, main.port, owned=owned,
                                              links=links)
        instance = inst.name
        if address is None:
            self._port(instance, why)
            return None
        self._why.pop(instance, None)
        return address

    def _port(self, instance: str, why: str) -> None:
        """Log once why an instance's published port is dialled."""
        if self._why.get(instance) != why:
            self._why[instance] = why
            log.info("gateway: %s: dialling its published port (%s)", instance, why)

    async def _resolve_dials(self) -> None:
        """Find each app's main container address (STACKHUB_GATEWAY_DIAL=container)."""
        dials: dict[str, str] = {}
        allocator = self.apps.planner.subnets
        if self.settings.dial == dial.CONTAINER and allocator is not None:
            links = await asyncio.to_thread(dial.host_links)
            owned = await asyncio.to_thread(allocator.everyone)
            for inst in self.apps.all():
                try:
                    address = self._address(inst, links, owned.get(inst.name, {}))
                except Exception as err:  # never stop the load: the port serves
                    log.warning("gateway: %s: dialling its published port (%s)", inst.name,
                                err)
                    continue
                if address is not None:
                    dials[inst.name] = address
        self._dials = dials

    async def _moved(self, instance: str) -> bool:
        """Tell whether an instance's main container has a new address worth a load.

        Not while an operation runs on it (its end loads anyway), and not when the container
        merely went away: the route's fallback (the published port) takes the requests and
        no other app can take the address (`dialled`). Every load costs: Caddy 2.6 resets a
        few connections being accepted while it swaps its listeners.
        """
        allocator = self.apps.planner.subnets
        if self.runner.busy(instance) or allocator is None:
            return False
        try:
            inst = self.apps.get(instance)
        except StackHubError:
            return False
        links = await asyncio.to_thread(dial.host_links)
        owned = await asyncio.to_thread(allocator.stored, instance)
        address = self._address(inst, links, owned)
        return address is not None and address != self._dials.get(instance)

    async def _load(self) -> None:
        await self._resolve_dials()
        spec = self.spec()
        await self.gateway.load(caddy.render(spec))
        self._loaded = self._dials
        self._hosts = {h: r.id.removeprefix("app-") for r in spec.routes if r.auth is not None
                       for h in r.hosts}
        self.loads += 1

    async def _reapply(self) -> None:
        assert self._lock is not None
        async with self._lock:
            await self._load()

    def schedule(self) -> None:
        """Ask for the config to be loaded again soon (changes close together: one load)."""
        if self._state is not None:
            self._state.dirty.set()

    async def _debounce(self) -> None:
        assert self._state is not None
        while True:
            await self._state.dirty.wait()
            await asyncio.sleep(DEBOUNCE)
            self._state.dirty.clear()
            if not self.enabled() and not self.gateway.running:
                continue
            try:
                await self.apply()
            except StackHubError as err:
                log.warning("gateway: %s", err.message)

    async def _listen(self, sub: Subscription) -> None:
        while True:
            event = await sub.queue.get()
            if event.topic == "instance":  # only a moved main container (new address) counts
                if self.settings.dial != dial.CONTAINER:
                    continue
                try:
                    if not await self._moved(event.key):
                        continue
                except Exception as err:  # keep listening; a load re-checks everything
                    log.warning("gateway: %s: %s", event.key, err)
            self.schedule()

    async def start(self) -> None:
        """Start the gateway if enabled, and follow instance lifecycle (server start)."""
        self._lock = asyncio.Lock()
        self._state = _State()
        self._sub = self.bus.subscribe(
            lambda e: (e.topic == "operation" and e.kind == "finished")
            or (e.topic == "instance" and e.kind == "containers"))
        self._tasks = [asyncio.create_task(self._debounce(), name="gateway-debounce"),
                       asyncio.create_task(self._listen(self._sub), name="gateway-listen"),
                       asyncio.create_task(self._rechecks(), name="gateway-recheck"),
                       *(asyncio.create_task(loop(), name="gateway-periodic")
                         for loop in self.periodic)]
        if self.enabled():
            try:
                await self.apply()
            except StackHubError as err:
                log.warning("gateway not started: %s", err.message)

    async def stop(self) -> None:
        """Stop following events and stop Caddy if StackHub started it (server stop)."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._sub is not None:
            self.bus.unsubscribe(self._sub)
            self._sub = None
        await self.gateway.stop()

    # -- custom domains ---------------------------------------------------------------------
    def normalise_custom(self, domain: str) -> str:
        """Return a custom domain normalised, refusing names under this box's base."""
        name = names.normalise(domain)
        base = self.base()[0]
        if base is not None and names.under(name, base):
            raise Invalid(f"{name} is under this box's base {base}: names under the base are "
                          "automatic (<instance>.<base>); bind a domain outside it")
        return name

    async def check(self, domain: str, instance: str | None = None) -> DnsCheck:
        """Look the domain up and say whether it reaches this box (and the fix if not)."""
        name = self.normalise_custom(domain)
        row = self.records.find(name)
        owner = instance or (row.instance if row else None)
        base = self.base()[0]
        automatic = f"{owner}.{base}" if owner and base else None
        answer = await asyncio.to_thread(self.resolver.lookup, name)
        check = names.judge(name, answer, automatic=automatic,
                            box=box_addresses(self.settings), ca_id=self.settings.caa_id)
        if self.records.find(name) is not None:  # kept for DomainRead.dns_status
            self.dns_checks[name] = check
        return check

    def claim_domain(self, instance: str, domain: str) -> str:
        """Validate a binding request; return the normalised domain (nothing is written)."""
        self._usable()
        name = self.normalise_custom(domain)
        self.apps.get(instance)
        row = self.records.find(name)
        if row is not None and row.instance != instance:
            raise AlreadyExists(f"{name} is already bound to {row.instance!r}; remove it there "
                                "first")
        return name

    def unbind(self, instance: str, domain: str) -> None:
        """Delete a custom domain of an instance (the config follows, batched)."""
        name = names.normalise(domain)
        row = self.records.find(name)
        if row is None or row.instance != instance:
            raise NotFound(f"{name} is not bound to {instance!r}")
        self.records.delete(name)
        self.dns_checks.pop(name, None)

    async def serves(self, domain: str) -> Served:
        """Fetch https://domain/ through the local gateway, verifying its certificate.

        `Served.page` tells the gateway's own pages (stopped, not answering, no route: marked
        with caddy.PAGE_HEADER) from the app's answers, whatever their status.
        """
        context = ssl.create_default_context()
        for root in self.settings.acme_roots:
            context.load_verify_locations(cafile=root)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", self.settings.https_port, ssl=context, server_hostname=domain), 60)
        try:
            cert = writer.get_extra_info("peercert") or {}
            writer.write(f"GET / HTTP/1.1\r\nHost: {domain}\r\nConnection: close\r\n"
                         "User-Agent: stackhub-domain-check\r\n\r\n".encode())
            await writer.drain()
            status = (await asyncio.wait_for(reader.readline(), 30)).decode(errors="replace")
            page = None
            for _ in range(200):  # the headers: the gateway marks its own pages
                line = (await asyncio.wait_for(reader.readline(), 30)).decode(errors="replace")
                key, _, value = line.partition(":")
                if not line.strip():
                    break
                if key.strip().lower() == caddy.PAGE_HEADER.lower():
                    page = value.strip()
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
        issuer = ", ".join(str(v) for part in cert.get("issuer", ()) for k, v in part
                           if k in ("commonName", "organizationName"))
        expires = cert.get("notAfter")
        stamp = datetime.fromtimestamp(ssl.cert_time_to_seconds(str(expires)), UTC).isoformat() \
            if expires else ""
        return Served(issuer=issuer, expires_at=stamp, status=status.strip(), page=page)

    def caddy_error(self, domain: str) -> str | None:
        """Return what Caddy last logged about obtaining `domain`'s certificate."""
        return self.gateway.last_error(domain)

    async def ca_root(self) -> str:
        """Return the internal CA's root certificate (PEM) for LAN names."""
        self._usable()
        if not self.gateway.running:
            raise Conflict("the gateway is not running: set a base domain first (stackhub "
                           "domain base NAME)")
        return await self.gateway.admin.ca_root()


    # -- protection (forward auth) ----------------------------------------------------------
    def protected_hosts(self) -> dict[str, str]:
        """Return {host: instance} of the names the loaded config guards with the sign-in."""
        if self._hosts is None:
            spec = self.spec()
            return {h: r.id.removeprefix("app-") for r in spec.routes if r.auth is not None
                    for h in r.hosts}
        return self._hosts

    def console_url(self) -> str:
        """Return the console's address for browsers: https://console.<base>, else the API's."""
        base = self.base()[0]
        if base is not None:
            return self._url(f"{names.CONSOLE}.{base}")
        api = self._api_upstream()
        return f"http://{api}" if api else ""

    def protection(self, instance: str) -> ProtectionRead:
        """Return whether an instance is behind the sign-in, and the names that covers."""
        self.apps.get(instance)
        on = instance in self.records.protected()
        hosts = [d.name for d in self.domains(instance)]
        warning = None
        if on and not hosts:
            warning = (f"{instance} has no gateway name yet: set a base domain or add a "
                       "custom domain; the sign-in guards only names the gateway serves")
        local = self._loopback_port(instance)
        if on and local is None and hosts:
            warning = ("the sign-in guards the gateway's names; the app publishes no web port "
                       "StackHub could limit to this box")
        return ProtectionRead(instance=instance, protected=on, hosts=hosts, warning=warning,
                              local_port=local)

    def _loopback_port(self, instance: str) -> int | None:
        """Return the host port published on 127.0.0.1 only for `instance`, or None."""
        marker = self.paths.instance_dir(instance) / LOOPBACK_FILE
        if not marker.is_file():
            return None
        inst = self.apps.get(instance)
        main = inst.main
        for mapping in inst.ports:
            if main and mapping.service == main.service and \
                    mapping.container_port == main.port and mapping.protocol == "tcp":
                return mapping.host_port
        return None

    async def _publish_locally(self, instance: str, on: bool) -> None:
        """Publish the app's web port on 127.0.0.1 only (on) or on all interfaces (off).

        A marker in the project folder makes every compose call add an override binding the
        main web port to 127.0.0.1 (apps/loopback.py); ``compose up`` then recreates only
        that service. The gateway reaches the app on 127.0.0.1:PORT either way.
        """
        inst = self.apps.get(instance)
        marker = self.paths.instance_dir(instance) / LOOPBACK_FILE
        if inst.main is None or marker.is_file() == on:
            return
        if on:
            fsutil.write_atomic(marker, json.dumps({"service": inst.main.service,
                                                    "port": inst.main.port}), mode=0o600)
        else:
            marker.unlink()
        if inst.status == InstanceStatus.STOPPED:
            return  # applied at the next start
        try:
            await self.apps.up(instance)
        except StackHubError:
            if on:
                marker.unlink(missing_ok=True)
            else:
                fsutil.write_atomic(marker, json.dumps({"service": inst.main.service,
                                                        "port": inst.main.port}), mode=0o600)
            raise

    async def protect(self, instance: str, on: bool) -> ProtectionRead:
        """Put an instance behind the sign-in (or take it out): a `protect` operation.

        When on, the app's web port is published on 127.0.0.1 only, so the sign-in cannot be
        bypassed at http://HOST:PORT; off publishes it on all interfaces again. The call waits
        for the operation (journaled, with steps and events); a failure puts everything back.
        """
        self.apps.get(instance)
        op = self.runner.begin(PROTECT, instance)  # 409 while another operation runs
        before = instance in self.records.protected()
        await self.runner.run(op, lambda run: self._protect(run, instance, on),
                              undo=self._protect_undo(instance, before))
        return self.protection(instance).model_copy(update={"operation": op.id})

    async def _protect(self, run: Run, instance: str, on: bool) -> Outcome:
        """Record the choice and load the routes, then publish the web port accordingly."""
        run.step("route", 20.0)
        self.records.set_protected(instance, on)
        if self.enabled() and self.gateway.available() is None:
            await self.apply()
        await faults.checkpoint("protect-before-publish")
        run.step("publish", 60.0)
        await self._publish_locally(instance, on)
        return None

    def _protect_undo(self, instance: str, before: bool) -> Undo:
        def undo(_run: Run, _err: StackHubError) -> bool:
            self.records.set_protected(instance, before)  # the port: _publish_locally's own
            self.schedule()
            return False
        return undo

    async def _protect_after_crash(self, op: OperationRead) -> None:
        """Make the web port's publishing agree with the recorded choice after a crash."""
        try:
            self.apps.get(op.instance)
        except NotFound:
            return
        self.schedule()
        await self._publish_locally(op.instance, op.instance in self.records.protected())

    # -- re-checks: dangling domains, expiring certificates --------------------------------
    async def recheck(self) -> RecheckRead:
        """Look every custom domain up again; flag those whose DNS no longer reaches here."""
        known = {i.name for i in self.apps.all()}
        dangling: list[str] = []
        checked = 0
        for row in self.records.all():
            if row.state not in (DomainState.ACTIVE, DomainState.DANGLING):
                continue
            if row.instance not in known:
                dangling.append(row.name)
                continue
            checked += 1
            try:
                check = await self.check(row.name, row.instance)
            except StackHubError as err:
                log.warning("gateway: re-check of %s: %s", row.name, err.message)
                continue
            cert = read_certificate(self.gateway.storage, row.name)
            issuer = cert.issuer if cert else None
            expires = cert.expires_at.isoformat() if cert else None
            if check.ok:
                self.records.update(row.name, state=DomainState.ACTIVE.value, issuer=issuer,
                                    expires_at=expires)
            else:
                dangling.append(row.name)
                reason = f"DNS no longer reaches this box: {check.problem}"
                self.records.update(row.name, state=DomainState.DANGLING.value,
                                    failure=DomainFailure(
                                        f"{reason}: {check.fix}" if check.fix else reason,
                                        DomainError.DANGLING, DomainErrorDetail(dns=check)),
                                    issuer=issuer, expires_at=expires)
        await self._check_public_base()
        expiring = [d.name for d in self.domains() if d.warning]
        self.last_recheck = RecheckRead(checked=checked, dangling=sorted(dangling),
                                        expiring=expiring,
                                        checked_at=datetime.now(UTC).isoformat())
        for name in expiring:
            log.warning("gateway: %s: %s", name,
                        next(d.warning for d in self.domains() if d.name == name))
        return self.last_recheck

    async def _rechecks(self) -> None:
        while True:
            await self.sleep(self.settings.recheck)
            if not self.records.all():  # no custom domain: only the public base's record
                with contextlib.suppress(StackHubError):
                    await self._check_public_base()
                continue
            try:
                await self.recheck()
            except Exception as err:  # keep re-checking whatever happens
                log.warning("gateway: re-check failed: %s", getattr(err, "message", err))


def dns_status(check: DnsCheck) -> DnsStatus:
    """Return what a DNS check found: ok, missing, wrong, or unchecked (the lookup failed)."""
    if check.ok:
        return DnsStatus.OK
    if check.problem_code == DnsProblem.LOOKUP_FAILED:
        return DnsStatus.UNCHECKED
    if not check.cnames and not check.addresses:
        return DnsStatus.MISSING
    return DnsStatus.WRONG


def target(inst: InstanceRead) -> tuple[str | None, DomainFailure | None]:
    """Return where requests for an instance go (127.0.0.1:PORT), or why nowhere."""
    if inst.status == InstanceStatus.STOPPED:
        return None, DomainFailure(f"The app {inst.name} is stopped. Start it in StackHub to "
                                   "use it here.", DomainError.APP_STOPPED)
    main = inst.main
    if main is None:
        return None, DomainFailure(f"The app {inst.name} has no web page.",
                                   DomainError.APP_NO_WEB)
    for mapping in inst.ports:
        if mapping.service == main.service and mapping.container_port == main.port and \
                mapping.protocol == "tcp":
            return f"127.0.0.1:{mapping.host_port}", None
    return None, DomainFailure(f"The app {inst.name} publishes no port for its web page.",
                               DomainError.APP_NO_PORT)
