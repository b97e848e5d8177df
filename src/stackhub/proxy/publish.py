"""DNS records StackHub keeps at the DNS provider: the base's wildcard, custom domains, the IP.

With a provider lexicon can drive (adapters/dnsrecords.py), StackHub writes ``<base>`` and
``*.<base>`` (A or AAAA) to the box's public address, and each custom domain inside the
provider's zone (a CNAME to the app's automatic name, or an A record at the zone's apex).
The public address is learnt from STACKHUB_PUBLIC_IP_URL (a page answering with the bare
address) every STACKHUB_PUBLIC_IP_EVERY seconds; a change rewrites the records. Only records
that differ from what was last written are sent. What was written is kept in the table
``dns_published`` (a row is saved before the write and marked written after it), so after a
restart StackHub still updates, and deletes when no longer wanted, the records it created.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import httpx

from stackhub.adapters import dnsrecords
from stackhub.errors import Conflict, GatewayUnavailable, StackHubError
from stackhub.proxy import names
from stackhub.proxy.models import DnsRecord, DomainState, PublishedRecord, RecordsRead
from stackhub.proxy.providers import Provider
from stackhub.proxy.service import ProxyService

log = logging.getLogger("stackhub.gateway")
SOURCE = "https://api.ipify.org"
EVERY = 300.0


@dataclass(frozen=True)
class PublishSettings:
    """Where and how often the public address is learnt (STACKHUB_PUBLIC_IP_*)."""

    source: str = SOURCE
    every: float = EVERY
    fixed: str | None = None
    """STACKHUB_PUBLIC_IP: use this address, never ask `source`."""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> PublishSettings:
        """Read STACKHUB_PUBLIC_IP_URL, STACKHUB_PUBLIC_IP_EVERY and STACKHUB_PUBLIC_IP."""
        env = dict(os.environ) if env is None else env
        every = env.get("STACKHUB_PUBLIC_IP_EVERY", "").strip()
        return cls(source=env.get("STACKHUB_PUBLIC_IP_URL", "").strip() or SOURCE,
                   every=max(float(every), 1.0) if every.replace(".", "", 1).isdigit()
                   else EVERY,
                   fixed=env.get("STACKHUB_PUBLIC_IP", "").strip() or None)


def parse_address(text: str, source: str) -> str:
    """Return the address a source answered (the first word), or raise GatewayUnavailable."""
    word = (text.strip().split() or [""])[0][:64]
    try:
        return str(ipaddress.ip_address(word))
    except ValueError as err:
        raise GatewayUnavailable(f"{source} did not answer with an IP address "
                                 f"({word[:40]!r})") from err


async def fetch_address(source: str, timeout: float = 10.0) -> str:
    """Ask `source` for the box's public address."""
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            answer = await client.get(source)
            answer.raise_for_status()
    except httpx.HTTPError as err:
        raise GatewayUnavailable(f"cannot learn the public address from {source}: "
                                 f"{err or type(err).__name__}") from err
    return parse_address(answer.text, source)


Key = tuple[str, str]


def wanted(*, zone: str, base: str | None, address: str,
           domains: list[tuple[str, str]]) -> dict[Key, str]:
    """Return the records StackHub keeps in `zone`: {(name, type): content}.

    `domains` are (custom domain, instance) pairs; those outside the zone are the user's to
    point (StackHub shows the record to create).
    """
    kind = "AAAA" if ipaddress.ip_address(address).version == 6 else "A"
    found: dict[Key, str] = {}
    if base is not None and names.under(base, zone):
        found[(base, kind)] = address
        found[(f"*.{base}", kind)] = address
    for domain, instance in domains:
        if not names.under(domain, zone):
            continue
        if domain == zone or base is None:
            found[(domain, kind)] = address  # no CNAME at a zone's apex
        else:
            found[(domain, "CNAME")] = f"{instance}.{base}"
    return found


class RecordPublisher:
    """Keep the wanted records at the provider; re-learn the public address periodically."""

    def __init__(self, *, proxy: ProxyService, settings: PublishSettings | None = None,
                 fetch: Callable[[str], Awaitable[str]] = fetch_address,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """Keep the collaborators; have the proxy run the address check."""
        self.proxy = proxy
        self.settings = settings or PublishSettings.from_env()
        self.fetch = fetch
        self.clock = clock
        self.address: str | None = None
        self.checked_at: str | None = None
        self.synced_at: str | None = None
        self.error: str | None = None
        self._lock = asyncio.Lock()
        proxy.periodic.append(self._loop)

    def _provider(self) -> Provider | None:
        provider = self.proxy.providers.get()
        return provider if provider and dnsrecords.manages(provider.kind.kind) else None

    def _zone(self, provider: Provider) -> str:
        base = self.proxy.base()[0]
        return provider.zone or provider.zone_for(base or "")

    def _wanted(self, provider: Provider, address: str) -> dict[Key, str]:
        known = {i.name for i in self.proxy.apps.all()}
        domains = [(r.name, r.instance) for r in self.proxy.records.all()
                   if r.state != DomainState.FAILED.value and r.instance in known]
        return wanted(zone=self._zone(provider), base=self.proxy.base()[0], address=address,
                      domains=domains)

    def published(self, zone: str) -> dict[Key, str]:
        """Return the records of `zone` known written at the provider: {(name, type): content}."""
        return {(n, t): content for (z, n, t), (content, written)
                in self.proxy.records.dns_published().items() if z == zone and written}

    def read(self) -> RecordsRead:
        """Return the managed records, the public address and the last error."""
        provider = self._provider()
        records: list[PublishedRecord] = []
        if provider is not None and self.address is not None:
            done = self.published(self._zone(provider))
            records = [PublishedRecord(name=n, type=t, content=c,
                                       published=done.get((n, t)) == c)
                       for (n, t), c in sorted(self._wanted(provider, self.address).items())]
        return RecordsRead(managed=provider is not None,
                           zone=self._zone(provider) if provider else None,
                           public_ip=self.address,
                           source="STACKHUB_PUBLIC_IP" if self.settings.fixed
                           else self.settings.source,
                           checked_at=self.checked_at, synced_at=self.synced_at,
                           records=records, error=self.error)

    async def learn(self) -> str:
        """Learn the public address now (STACKHUB_PUBLIC_IP, else the source URL)."""
        address = parse_address(self.settings.fixed, "STACKHUB_PUBLIC_IP") \
            if self.settings.fixed else await self.fetch(self.settings.source)
        if address != self.address and self.address is not None:
            log.info("gateway: the public address changed from %s to %s", self.address,
                     address)
        self.address = address
        self.checked_at = self.clock().isoformat()
        return address

    async def sync(self) -> RecordsRead:
        """Learn the address, then write the records that differ and delete stale ones."""
        provider = self._provider()
        if provider is None:
            raise Conflict("no DNS provider that StackHub can write records with is set: use "
                           f"one of {', '.join(sorted(dnsrecords.PROVIDERS))} (stackhub "
                           "domain provider set)")
        async with self._lock:
            try:
                address = await self.learn()
                left = await self._write(provider, self._wanted(provider, address))
            except StackHubError as err:
                self.error = err.message
                raise
            self.error = left
            self.synced_at = self.clock().isoformat()
        return self.read()

    def zone_of(self, domain: str) -> str | None:
        """Return the zone StackHub writes `domain`'s record in, or None (the user's to point)."""
        provider = self._provider()
        if provider is None:
            return None
        zone = self._zone(provider)
        return zone if zone and names.under(domain, zone) else None

    async def create(self, domain: str, instance: str) -> DnsRecord:
        """Write the record pointing `domain` at `instance` in the managed zone, now.

        A CNAME to the app's automatic name, or an A/AAAA record to the public address at the
        zone's apex or without a base (what `wanted` keeps). A refused write is undone (the
        record deleted if the provider made it after all) and raised.
        """
        provider = self._provider()
        zone = self.zone_of(domain)
        if provider is None or zone is None:
            raise Conflict(f"StackHub manages no DNS zone holding {domain}")
        async with self._lock:
            base = self.proxy.base()[0]
            rtype: Literal["CNAME", "A", "AAAA"]
            if domain == zone or base is None:
                address = self.address or await self.learn()
                rtype, content = ("AAAA" if ":" in address else "A"), address
            else:
                rtype, content = "CNAME", f"{instance}.{base}"
            rows = self.proxy.records
            where = dnsrecords.Zone(provider.kind.kind, provider.env, zone)
            if rows.dns_published().get((zone, domain, rtype)) != (content, True):
                rows.set_dns_published(zone, domain, rtype, content, written=False)
                try:
                    await dnsrecords.replace(where, domain, rtype, (content,))
                except StackHubError:
                    with contextlib.suppress(StackHubError):
                        await dnsrecords.delete(where, domain, rtype)
                    rows.drop_dns_published(zone, domain, rtype)
                    raise
                rows.set_dns_published(zone, domain, rtype, content, written=True)
        return DnsRecord(type=rtype, name=domain, value=content)

    async def forget(self, domain: str) -> list[str]:
        """Delete the records StackHub wrote for `domain` (unbound); return what was deleted."""
        provider = self._provider()
        deleted: list[str] = []
        if provider is None:
            return deleted  # the records stay known: a provider set again deletes them
        async with self._lock:
            for zone, name, rtype in sorted(self.proxy.records.dns_published()):
                if name != domain:
                    continue
                await dnsrecords.delete(dnsrecords.Zone(provider.kind.kind, provider.env, zone),
                                        name, rtype)
                self.proxy.records.drop_dns_published(zone, name, rtype)
                deleted.append(f"{rtype} {name}")
        return deleted

    async def _write(self, provider: Provider, want: dict[Key, str]) -> str | None:
        """Send what differs from the table, delete what is no longer wanted.

        Returns why records left in another zone (an earlier provider's) stay, or None.
        """
        rows, name = self.proxy.records, self._zone(provider)
        zone = dnsrecords.Zone(provider.kind.kind, provider.env, name)
        known = rows.dns_published()
        for (rname, rtype), content in sorted(want.items()):
            if known.get((name, rname, rtype)) != (content, True):
                rows.set_dns_published(name, rname, rtype, content, written=False)
                await dnsrecords.replace(zone, rname, rtype, (content,))
                rows.set_dns_published(name, rname, rtype, content, written=True)
        left: list[str] = []
        for zname, rname, rtype in sorted(set(known) - {(name, *k) for k in want}):
            try:
                await dnsrecords.delete(zone if zname == name else dnsrecords.Zone(
                    provider.kind.kind, provider.env, zname), rname, rtype)
            except StackHubError as err:
                if zname == name:
                    raise
                log.warning("gateway: DNS records: %s", err.message)
                left.append(f"{rtype} {rname} (zone {zname}): {err.message}")
                continue
            rows.drop_dns_published(zname, rname, rtype)
        return ("StackHub could not delete records it wrote in a zone it no longer manages: "
                + "; ".join(left))[:600] if left else None

    async def _loop(self) -> None:
        while True:
            if self._provider() is not None:
                try:
                    await self.sync()
                except Exception as err:  # keep checking whatever happens
                    log.warning("gateway: DNS records: %s", getattr(err, "message", err))
            await asyncio.sleep(self.settings.every)
