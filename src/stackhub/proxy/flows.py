"""The steps of the domain operation: route the domain, then wait until it serves over HTTPS.

The DNS check runs before the operation starts (a wrong record is refused with nothing
changed); the operation adds the route (one config load; Caddy obtains the certificate by
HTTP-01 on the first TLS handshake, as its ``ask`` allows) and fetches the domain until it
answers with a valid certificate or the time is up.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import NoReturn

from stackhub import faults
from stackhub.apps.models import OperationRead
from stackhub.errors import GatewayUnavailable, Invalid, StackHubError
from stackhub.operations.runner import OperationKind, Outcome, Run, Runner, Undo, register
from stackhub.proxy.models import DomainAccepted, DomainState
from stackhub.proxy.service import ProxyService, Served

log = logging.getLogger("stackhub.gateway")
DOMAIN = register(OperationKind("domain", "binding the domain", None, None, None,
                                hint="run `stackhub domain add` again, or remove the domain",
                                engine=False))
RETRY = 1.0


class CertificateFailed(GatewayUnavailable):
    """The domain did not come to serve over HTTPS in time."""

    code = "certificate_failed"


class DomainFlows:
    """Bind custom domains as operations on the runner."""

    def __init__(self, *, proxy: ProxyService, runner: Runner) -> None:
        """Keep the collaborators; register the after-crash hook."""
        self.proxy = proxy
        self.runner = runner
        runner.after_crash(DOMAIN.name, self._after_crash)

    async def add(self, instance: str, domain: str) -> DomainAccepted:
        """Check the name and its DNS, then start the operation that binds it."""
        name = self.proxy.claim_domain(instance, domain)
        self.runner.claim(instance)
        check = await self.proxy.check(name, instance)
        if not check.ok:
            raise_dns(check.problem, check.fix, check.model_dump(mode="json"))
        op = self.runner.begin(DOMAIN, instance)
        self.runner.start(op, lambda run: self.bind(run, name), undo=self._undo(name),
                          prepare=lambda _run: self.proxy.records.put(
                              name, instance, DomainState.PENDING.value))
        return DomainAccepted(operation=op, instance=instance, domain=name)

    async def bind(self, run: Run, name: str) -> Outcome:
        """Route the domain, then wait until it serves the app over HTTPS."""
        run.step("route", 10.0)
        await self.proxy.apply()
        await faults.checkpoint("domain-before-certificate")
        run.step("certificate", 30.0)
        served = await self.wait_https(name)
        self.proxy.records.update(name, state=DomainState.ACTIVE.value, issuer=served.issuer,
                                  expires_at=served.expires_at)
        run.emit("progress", progress=100.0, step="certificate", issuer=served.issuer)
        return None

    async def wait_https(self, name: str) -> Served:
        """Fetch the domain through the gateway until its certificate verifies; raise why not."""
        deadline = time.monotonic() + self.proxy.settings.timeout
        last = "no answer yet"
        while True:
            try:
                return await self.proxy.serves(name)
            except ssl.SSLCertVerificationError as err:
                last = f"the certificate served for {name} is not valid yet ({err.verify_message})"
            except (OSError, TimeoutError, ssl.SSLError) as err:
                last = f"{type(err).__name__}: {err}"
            reason = self.proxy.caddy_error(name)
            if reason is not None and ("obtain" in reason or "certificate" in reason
                                       or "acme" in reason.lower()):
                raise CertificateFailed(f"the certificate for {name} could not be obtained: "
                                        f"{reason}")
            if time.monotonic() >= deadline:
                raise CertificateFailed(f"{name} did not serve over HTTPS within "
                                        f"{self.proxy.settings.timeout:.0f} s: {last}; check "
                                        "that port 80 of this box is reachable from the "
                                        "internet (the CA connects to it)")
            await asyncio.sleep(RETRY)

    def _undo(self, name: str) -> Undo:
        def undo(_run: Run, err: StackHubError) -> bool:
            self.proxy.records.update(name, state=DomainState.FAILED.value, error=err.message)
            self.proxy.schedule()
            return False
        return undo

    async def _after_crash(self, op: OperationRead) -> None:
        """Mark the domains a crash left pending as failed (the config no longer serves them)."""
        for row in self.proxy.records.all(op.instance):
            if row.state == DomainState.PENDING.value:
                self.proxy.records.update(row.name, state=DomainState.FAILED.value,
                                          error="StackHub stopped while binding this domain; "
                                          "run `stackhub domain add` again")


def raise_dns(problem: str | None, fix: str | None, details: dict[str, object]) -> NoReturn:
    """Raise the DNS refusal with the record to create."""
    raise Invalid(f"{problem}: {fix}" if fix else str(problem), details=details)
