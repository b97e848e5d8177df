"""The base domain with one wildcard certificate obtained by DNS-01 (lego and a DNS provider).

For a box behind NAT without port 80: lego asks the configured DNS provider to publish the
challenge TXT record, the CA checks it, and the certificate for ``*.<base>`` and ``<base>`` is
loaded into Caddy inline, so Caddy never tries HTTP-01 for the base's names. The base is
switched only once the certificate is there: a failed run changes nothing. A daily check
renews the certificate when fewer than 30 days are left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from stackhub import faults
from stackhub.adapters import lego
from stackhub.apps.models import OperationRead
from stackhub.errors import (
    AlreadyExists,
    CaRefused,
    Conflict,
    GatewayUnavailable,
    Invalid,
    StackHubError,
)
from stackhub.operations.runner import OperationKind, Run, Runner, register
from stackhub.proxy import dnshook, names, providers
from stackhub.proxy.models import TlsMode, WildcardAccepted
from stackhub.proxy.service import BASE_KEY, TLS_KEY, ProxyService

log = logging.getLogger("stackhub.gateway")
WILDCARD = register(OperationKind("wildcard", "obtaining the wildcard certificate", None, None,
                                  None, hint="run `stackhub domain base NAME --tls dns01` "
                                  "again", engine=False))
SUBJECT = "@gateway"
"""The operation's subject in the journal: the gateway itself (no app can be named so)."""
DAY = 86400.0


@dataclass(frozen=True)
class Dns01Settings:
    """How lego runs (STACKHUB_DNS01_*; the resolver is STACKHUB_DNS_RESOLVER)."""

    propagation_check: bool = True
    timeout: float = 900.0
    check_every: float = DAY
    renew_days: int = lego.RENEW_DAYS

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Dns01Settings:
        """Read STACKHUB_DNS01_PROPAGATION_CHECK, _TIMEOUT, _CHECK_EVERY and _RENEW_DAYS."""
        env = dict(os.environ) if env is None else env

        def number(key: str, default: float) -> float:
            text = env.get(key, "").strip()
            return max(float(text), 1.0) if text.replace(".", "", 1).isdigit() else default

        return cls(propagation_check=env.get("STACKHUB_DNS01_PROPAGATION_CHECK", "1").strip()
                   not in ("0", "off", "no", "false"),
                   timeout=number("STACKHUB_DNS01_TIMEOUT", 900.0),
                   check_every=number("STACKHUB_DNS01_CHECK_EVERY", DAY),
                   renew_days=int(number("STACKHUB_DNS01_RENEW_DAYS", lego.RENEW_DAYS)))


def due(not_after: datetime, moment: datetime, days: int = lego.RENEW_DAYS) -> bool:
    """Tell whether a certificate expiring at `not_after` is to be renewed at `moment`."""
    return not_after - moment < timedelta(days=days)


class WildcardFlows:
    """Obtain and renew the base's wildcard as operations on the runner."""

    def __init__(self, *, proxy: ProxyService, runner: Runner,
                 settings: Dns01Settings | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """Keep the collaborators; have the proxy run the daily renewal check."""
        self.proxy = proxy
        self.runner = runner
        self.settings = settings or Dns01Settings.from_env()
        self.clock = clock
        proxy.periodic.append(self._renewals)

    def _request(self, base: str, *,
                 renew: bool) -> tuple[lego.Request, dict[str, str], str, dict[str, str]]:
        """Return lego's request, the credentials, the kind and the (not secret) extra env.

        A kind this lego lacks runs through its exec provider and StackHub's lexicon hook.
        """
        provider = self.proxy.providers.get()
        if provider is None:
            raise Invalid("no DNS provider is set: set one first (stackhub domain provider set "
                          "KIND --env KEY=VALUE ...)")
        email = provider.email or self.proxy.settings.acme_email
        if not email:
            raise Invalid("the CA needs an account email: give --email to `stackhub domain "
                          "provider set`, or set STACKHUB_ACME_EMAIL")
        resolver = self.proxy.settings.resolver
        extra: dict[str, str] = {}
        name = provider.kind.lego
        if providers.through_exec(provider.kind):
            name = "exec"
            extra = dnshook.settings(provider.kind.kind, provider.zone_for(base),
                                     dnshook.script(self.proxy.lego_path))
        request = lego.Request(base=base, email=email, ca=self.proxy.settings.acme_ca,
                               path=self.proxy.lego_path, provider=name,
                               resolvers=(resolver,) if resolver else (),
                               propagation_check=self.settings.propagation_check, renew=renew,
                               renew_days=self.settings.renew_days)
        return request, provider.env, provider.kind.kind, extra

    async def obtain(self, base: str) -> WildcardAccepted:
        """Check the request, then start the operation that obtains the wildcard for `base`."""
        self.proxy.usable()
        name = names.normalise(base, what="base domain")
        if names.tls_for(name, "auto") == TlsMode.INTERNAL:
            raise Invalid(f"{name} is a LAN name: no public CA issues for it; use the internal"
                          " CA (stackhub domain base NAME --tls internal)")
        clash = [d.name for d in self.proxy.records.all() if names.under(d.name, name)]
        if clash:
            raise AlreadyExists(f"{', '.join(clash)} is bound as a custom domain under "
                                f"{name}; remove it first (names under the base are automatic)")
        self._request(name, renew=False)
        if lego.binary() is None:
            raise GatewayUnavailable("lego is not installed (apt-get install lego, or set "
                                     "STACKHUB_LEGO_BIN)")
        op = self.runner.begin(WILDCARD, SUBJECT)
        self.runner.start(op, lambda run: self.issue(run, name, renew=False))
        return WildcardAccepted(operation=op, base=name)

    async def issue(self, run: Run, base: str, *, renew: bool) -> None:
        """Run lego, then switch the base to it (or re-load the renewed certificate)."""
        run.step("challenge", 10.0)
        await faults.checkpoint("wildcard-challenge")
        request, credentials, kind, extra = self._request(base, renew=renew)
        try:
            outcome = await lego.run(request, credentials, roots=self.proxy.settings.acme_roots,
                                     timeout=self.settings.timeout, extra=extra)
        except TimeoutError as err:
            raise CaRefused(f"lego did not finish within {self.settings.timeout:.0f} s "
                            "(the DNS provider or the CA does not answer)") from err
        if outcome.code != 0:
            raise lego.explain(outcome.output, kind)
        pair = lego.read(self.proxy.lego_path, base)
        if pair is None:
            raise CaRefused("lego finished without leaving a certificate: "
                            f"{outcome.output.strip().splitlines()[-1:]}")
        run.step("load", 70.0)
        if renew:
            await self.proxy.apply()
        else:
            await self._switch(base)
        self.proxy.wildcard_error = None
        if self.proxy.enabled() and self.proxy.gateway.running:
            run.step("serve", 90.0)
            await self._wait_served(f"{names.CONSOLE}.{base}")
        run.step("records", 95.0)  # not fatal: records are the user's, or proxy/publish.py's
        check = await self.proxy.check_wildcard(base)
        if not check.ok:
            log.warning("gateway: %s: %s", check.problem, check.fix)
        run.emit("progress", progress=100.0, step="records", issuer=pair.issuer,
                 expires_at=pair.not_after.isoformat(), dns_ok=check.ok)

    async def _switch(self, base: str) -> None:
        """Make `base` the base with its wildcard; put the previous one back on failure."""
        previous = self.proxy.base()
        self.proxy.records.set_setting(BASE_KEY, base)
        self.proxy.records.set_setting(TLS_KEY, TlsMode.DNS01.value)
        try:
            await self.proxy.apply()
        except StackHubError:
            self.proxy.records.set_setting(BASE_KEY, previous[0])
            self.proxy.records.set_setting(TLS_KEY, previous[1].value if previous[1] else None)
            with contextlib.suppress(StackHubError):
                await self.proxy.apply()
            raise

    async def _wait_served(self, host: str, timeout: float = 30.0) -> None:
        """Fetch `host` through the gateway until the wildcard verifies; raise why not."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.proxy.serves(host)
                return
            except (OSError, TimeoutError, ssl.SSLError) as err:
                if time.monotonic() >= deadline:
                    raise GatewayUnavailable(f"the gateway does not serve {host} with the "
                                             f"wildcard certificate: {err}") from err
            await asyncio.sleep(0.5)

    # -- renewal ----------------------------------------------------------------------------
    def renewal(self) -> str | None:
        """Return the base whose wildcard is due for renewal now, or None."""
        base, mode = self.proxy.base()
        if base is None or mode != TlsMode.DNS01:
            return None
        pair = lego.read(self.proxy.lego_path, base)
        if pair is not None and not due(pair.not_after, self.clock(), self.settings.renew_days):
            return None
        return base

    def renew_if_due(self) -> OperationRead | None:
        """Start the renewal operation if the wildcard is due (and none runs); return it."""
        base = self.renewal()
        if base is None or self.runner.busy(SUBJECT):
            return None
        return self._start_renewal(base)

    def renew_now(self) -> WildcardAccepted:
        """Renew the wildcard now if it is due (what the daily check does); raise why not."""
        base, mode = self.proxy.base()
        if base is None or mode != TlsMode.DNS01:
            raise Conflict("the base has no DNS-01 wildcard (stackhub domain base NAME --tls "
                           "dns01)")
        if self.renewal() is None:
            pair = lego.read(self.proxy.lego_path, base)
            when = (pair.not_after - timedelta(days=self.settings.renew_days)).date() \
                if pair else "?"
            raise Conflict(f"the wildcard of {base} is not due for renewal before {when}")
        self._request(base, renew=True)
        return WildcardAccepted(operation=self._start_renewal(base), base=base)

    def _start_renewal(self, base: str) -> OperationRead:
        op = self.runner.begin(WILDCARD, SUBJECT)
        self.runner.start(op, lambda run: self._renew(run, base))
        return op

    async def _renew(self, run: Run, base: str) -> None:
        try:
            await self.issue(run, base, renew=lego.read(self.proxy.lego_path, base) is not None)
        except StackHubError as err:
            self.proxy.wildcard_error = err.message
            log.warning("gateway: renewing the wildcard of %s failed: %s", base, err.message)
            raise

    async def _renewals(self) -> None:
        while True:
            try:
                self.renew_if_due()
            except Exception as err:  # keep checking whatever happens
                log.warning("gateway: wildcard renewal check failed: %s",
                            getattr(err, "message", err))
            await asyncio.sleep(self.settings.check_every)
