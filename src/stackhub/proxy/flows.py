"""The steps of the domain operation: route the domain, then wait until it serves over HTTPS.

The DNS check runs before the operation starts (a wrong record is refused with nothing
changed); the operation adds the route (one config load; Caddy obtains the certificate by
HTTP-01 on the first TLS handshake, as its ``ask`` allows) and fetches the domain until it
answers with a valid certificate or the time is up. For a domain inside the zone of the DNS
provider StackHub writes records with (proxy/publish.py), the operation first creates the
record itself (step ``dns-record``) and waits until it resolves to this box (step ``dns``);
a refused write removes the domain again, so nothing is left behind.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from typing import NoReturn

from stackhub import faults
from stackhub.adapters import caddy
from stackhub.apps.models import OperationRead
from stackhub.errors import DnsPropagationTimeout, GatewayUnavailable, Invalid, StackHubError
from stackhub.operations.runner import OperationKind, Outcome, Run, Runner, Undo, register
from stackhub.proxy import acme_errors, names
from stackhub.proxy.models import (
    DnsCheck,
    DnsProblem,
    DnsRecord,
    DnsStatus,
    DomainAccepted,
    DomainError,
    DomainErrorDetail,
    DomainFailure,
    DomainState,
)
from stackhub.proxy.publish import RecordPublisher
from stackhub.proxy.service import ProxyService, Served, dns_status

log = logging.getLogger("stackhub.gateway")
DOMAIN = register(OperationKind("domain", "binding the domain", None, None, None,
                                hint="run `stackhub domain add` again, or remove the domain",
                                engine=False))
RETRY = 1.0
DNS_RETRY = 2.0
"""Seconds between lookups while a record StackHub created propagates."""


class CertificateFailed(GatewayUnavailable):
    """The domain did not come to serve over HTTPS in time."""

    code = "certificate_failed"

    def __init__(self, failure: DomainFailure) -> None:
        """Say why, keeping the code and values to store with the domain."""
        super().__init__(failure.text)
        self.failure = failure


@dataclass
class _Binding:
    """What one `domain` operation did so far (its undo reads it)."""

    name: str
    instance: str
    managed: bool
    record: DnsRecord | None = None
    failure: DomainFailure | None = None
    """Why the operation is failing, with its code and values (stored by the undo)."""


class DomainFlows:
    """Bind custom domains as operations on the runner."""

    def __init__(self, *, proxy: ProxyService, runner: Runner,
                 publisher: RecordPublisher | None = None) -> None:
        """Keep the collaborators; register the after-crash hook."""
        self.proxy = proxy
        self.runner = runner
        self.publisher = publisher
        self._cleanups: set[asyncio.Task[None]] = set()
        runner.after_crash(DOMAIN.name, self._after_crash)

    async def add(self, instance: str, domain: str) -> DomainAccepted:
        """Check the name and its DNS, then start the operation that binds it.

        In a zone StackHub manages, a missing record is created by the operation, which then
        waits for it to resolve; a record that points elsewhere is refused there too (it is
        somebody's: replacing it, and deleting it if the add failed, would lose it).
        """
        name = self.proxy.claim_domain(instance, domain)
        self.runner.claim(instance)
        managed = self.publisher is not None and self.publisher.zone_of(name) is not None
        check = await self.proxy.check(name, instance)
        if check.ok:
            managed = False  # the record is there already: nothing to create, or to delete
        elif not managed:
            raise_dns(check.problem, check.fix, check.model_dump(mode="json"))
        elif dns_status(check) == DnsStatus.WRONG:  # someone's record: never replaced
            raise_dns(f"{check.problem} (StackHub manages this zone but does not replace a "
                      "record that points elsewhere: delete it at the DNS provider, or change "
                      "it yourself, then add the domain again)", check.fix,
                      check.model_dump(mode="json"))
        binding = _Binding(name=name, instance=instance, managed=managed)
        op = self.runner.begin(DOMAIN, instance)
        self.runner.start(op, lambda run: self.bind(run, binding), undo=self._undo(binding),
                          prepare=lambda _run: self.proxy.records.put(
                              name, instance, DomainState.PENDING.value))
        return DomainAccepted(operation=op, instance=instance, domain=name)

    async def bind(self, run: Run, binding: _Binding) -> Outcome:
        """Create its record (managed zone), route the domain, wait until it serves over HTTPS."""
        name = binding.name
        if binding.managed and self.publisher is not None:
            run.step("dns-record", 5.0)
            try:
                binding.record = await self.publisher.create(name, binding.instance)
            except StackHubError as err:
                raise type(err)(f"StackHub could not create the DNS record of {name} at the "
                                f"DNS provider, so the domain was not added: {err.message}",
                                details=err.details) from err
            run.emit("progress", progress=7.0, step="dns-record",
                     record=binding.record.model_dump())
            run.step("dns", 8.0)
            await self.wait_dns(binding)
        run.step("route", 10.0)
        try:
            await self.proxy.apply()
        except GatewayUnavailable as err:
            binding.failure = DomainFailure(err.message, DomainError.GATEWAY_DOWN,
                                            DomainErrorDetail(detail=err.message))
            raise
        await faults.checkpoint("domain-before-certificate")
        run.step("certificate", 30.0)
        served = await self.wait_https(name)
        problem = served.app_problem(binding.instance)  # bound all the same: TLS is in place
        self.proxy.records.update(name, state=DomainState.ACTIVE.value, issuer=served.issuer,
                                  expires_at=served.expires_at, failure=problem)
        run.emit("progress", progress=100.0, step="certificate", issuer=served.issuer,
                 **({"warning": problem.text} if problem else {}))
        return None

    async def remove(self, instance: str, domain: str) -> list[str]:
        """Unbind a custom domain, then delete the records StackHub created for it.

        Returns the records deleted at the DNS provider; one the provider refuses to delete
        now stays known, and the periodic sync deletes it later.
        """
        self.proxy.unbind(instance, domain)
        self.proxy.schedule()
        if self.publisher is None:
            return []
        try:
            return await self.publisher.forget(names.normalise(domain))
        except StackHubError as err:
            log.warning("gateway: the DNS record of %s stays for now: %s", domain, err.message)
            return []

    async def wait_dns(self, binding: _Binding) -> None:
        """Look the domain up until the record StackHub created leads to this box."""
        name, record = binding.name, binding.record
        deadline = time.monotonic() + self.proxy.settings.timeout
        while True:
            check = await self.proxy.check(name, binding.instance)
            if check.ok:
                return
            created = f"StackHub created {record.text()} at the DNS provider" if record \
                else "StackHub created the record"
            if check.problem_code == DnsProblem.CAA_FORBIDS:  # waiting does not change a CAA
                binding.failure = dns_failure(check)
                raise_dns(check.problem, check.fix, check.model_dump(mode="json"))
            if time.monotonic() >= deadline:
                seconds = round(self.proxy.settings.timeout)
                text = (f"{created}, but {name} did not lead to this box within "
                        f"{self.proxy.settings.timeout:.0f} s: {check.problem}")
                binding.failure = DomainFailure(text, DomainError.DNS_TIMEOUT, DomainErrorDetail(
                    seconds=seconds, record=record.text() if record else None, dns=check))
                raise DnsPropagationTimeout(text, details=check.model_dump(mode="json"))
            await asyncio.sleep(DNS_RETRY)

    async def wait_https(self, name: str) -> Served:
        """Fetch the domain through the gateway until its certificate verifies; raise why not.

        Caddy's errors are read while a fetch waits (an on-demand handshake is held while
        Caddy obtains the certificate, up to a minute): the first failure it logs after the
        start ends the wait with the cause in plain words (proxy/acme_errors.py).
        """
        deadline = time.monotonic() + self.proxy.settings.timeout
        since = time.time()
        last = "no answer yet"
        while True:
            fetch = asyncio.ensure_future(self.proxy.serves(name))
            try:
                while not fetch.done() and time.monotonic() < deadline:
                    self._certificate_failed(name, since)
                    await asyncio.wait({fetch}, timeout=RETRY)
                if not fetch.done():
                    last = "the TLS handshake did not finish (Caddy was still obtaining the " \
                        "certificate)"
                elif (served := fetch.result()).page != caddy.NO_ROUTE:
                    return served
                else:
                    last = f"the gateway has no route for {name} yet ({served.status})"
            except ssl.SSLCertVerificationError as err:
                last = f"the certificate served for {name} is not valid yet ({err.verify_message})"
            except (OSError, TimeoutError, ssl.SSLError) as err:
                last = f"{type(err).__name__}: {err}" if str(err) else \
                    f"{type(err).__name__} (no answer in time)"
            finally:
                fetch.cancel()
                if fetch.done() and not fetch.cancelled():
                    fetch.exception()  # read, so asyncio does not report it as never retrieved
            self._certificate_failed(name, since)
            if time.monotonic() >= deadline:
                raise CertificateFailed(DomainFailure(
                    f"{name} did not serve over HTTPS within "
                    f"{self.proxy.settings.timeout:.0f} s: {last}; check that port 80 of this "
                    "box is reachable from the internet (the CA connects to it)",
                    DomainError.HTTPS_TIMEOUT,
                    DomainErrorDetail(seconds=round(self.proxy.settings.timeout),
                                      detail=str(last))))
            await asyncio.sleep(RETRY)

    def _certificate_failed(self, name: str, since: float) -> None:
        """Raise CertificateFailed when Caddy logged, from `since`, why `name`'s failed."""
        reason = acme_errors.explain(name, self.proxy.gateway.errors(name, since),
                                     self.proxy.settings.acme_ca)
        if reason is not None:
            raise CertificateFailed(reason)

    def _undo(self, binding: _Binding) -> Undo:
        name = binding.name

        def undo(_run: Run, err: StackHubError) -> bool:
            if binding.managed and binding.record is None:
                self.proxy.records.delete(name)  # the record could not be made: leave nothing
            else:
                self.proxy.records.update(name, state=DomainState.FAILED.value,
                                          error=err.message, failure=failure_of(binding, err))
            if binding.record is not None:
                self._forget(name)
            self.proxy.schedule()
            return False
        return undo

    def _forget(self, name: str) -> None:
        """Delete the record StackHub created for a domain that did not bind (in the background)."""
        publisher = self.publisher
        if publisher is None:
            return

        async def forget() -> None:
            try:
                await publisher.forget(name)
            except StackHubError as err:  # the periodic sync deletes it later
                log.warning("gateway: the DNS record of %s stays for now: %s", name,
                            err.message)
        task = asyncio.get_running_loop().create_task(forget())
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _after_crash(self, op: OperationRead) -> None:
        """Mark the domains a crash left pending as failed (the config no longer serves them)."""
        for row in self.proxy.records.all(op.instance):
            if row.state == DomainState.PENDING.value:
                self.proxy.records.update(row.name, state=DomainState.FAILED.value,
                                          failure=INTERRUPTED)


INTERRUPTED = DomainFailure("StackHub stopped while binding this domain; run `stackhub domain "
                            "add` again", DomainError.INTERRUPTED)


def dns_failure(check: DnsCheck) -> DomainFailure:
    """Return a DNS refusal met while binding as the domain's failure (problem: fix)."""
    text = f"{check.problem}: {check.fix}" if check.fix else str(check.problem)
    return DomainFailure(text, DomainError.DNS_REFUSED, DomainErrorDetail(dns=check))


def failure_of(binding: _Binding, err: StackHubError) -> DomainFailure | None:
    """Return the code and values of the error that ended a binding, if it has them."""
    failure = err.failure if isinstance(err, CertificateFailed) else binding.failure
    return failure if failure is not None and failure.text == err.message else None


def raise_dns(problem: str | None, fix: str | None, details: dict[str, object]) -> NoReturn:
    """Raise the DNS refusal with the record to create."""
    raise Invalid(f"{problem}: {fix}" if fix else str(problem), details=details)
