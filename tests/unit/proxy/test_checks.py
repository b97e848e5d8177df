"""Certificate expiry warnings (14 days), certificates read from Caddy's storage, re-checks of
custom domains whose DNS no longer reaches the box (dangling), and protection bookkeeping."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from stackhub.adapters.dns import Answer
from stackhub.apps.loopback import LOOPBACK_FILE
from stackhub.errors import Conflict, EngineError, NotFound
from stackhub.operations.models import OperationState
from stackhub.proxy.models import DnsProblem, DnsStatus, DomainError, DomainFailure, DomainState
from stackhub.proxy.service import (
    PROTECT,
    GatewaySettings,
    ProxyService,
    expiry,
    read_certificate,
)
from stackhub.services import Services
from tests.unit.proxy.test_service import FakeGateway, FakeResolver, install

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def test_expiry_warns_within_14_days_and_after_expiry() -> None:
    assert expiry(None) == (None, None)
    assert expiry("not a date") == (None, None)
    assert expiry((NOW + dt.timedelta(days=60)).isoformat(), NOW) == (60, None)
    assert expiry((NOW + dt.timedelta(days=14, hours=1)).isoformat(), NOW) == (14, None)
    days, warning = expiry((NOW + dt.timedelta(days=13, hours=23)).isoformat(), NOW)
    assert days == 13 and warning is not None and "expires in 13 days" in warning
    days, warning = expiry((NOW - dt.timedelta(hours=1)).isoformat(), NOW)
    assert days == -1 and warning is not None and "expired on 2026-12-01" in warning
    # a short-lived leaf (the internal CA's last ~12 h) is flagged only when renewal is late
    hours = dt.timedelta(hours=1)
    assert expiry((NOW + 3 * hours).isoformat(), NOW, window=2 * hours) == (0, None)
    days, warning = expiry((NOW + hours).isoformat(), NOW, window=2 * hours)
    assert days == 0 and warning is not None and "expires in 1 h" in warning


def test_the_warning_window_follows_the_lifetime() -> None:
    from stackhub.proxy.service import Certificate

    year = Certificate("x", NOW + dt.timedelta(days=300), NOW - dt.timedelta(days=65))
    assert year.warn_window() == dt.timedelta(days=14)
    leaf = Certificate("x", NOW + dt.timedelta(hours=6), NOW - dt.timedelta(hours=6))
    assert leaf.warn_window() == dt.timedelta(hours=2)


def write_cert(storage: Path, issuer_dir: str, host: str, days: int, issuer: str,
               age: int = 1) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, host)])
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=age)
    cert = (x509.CertificateBuilder().subject_name(name)
            .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days + age))
            .sign(key, hashes.SHA256()))
    folder = storage / "certificates" / issuer_dir / host
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{host}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_the_latest_certificate_in_caddys_storage_is_read(tmp_path: Path) -> None:
    assert read_certificate(tmp_path, "web.home.lan") is None
    write_cert(tmp_path, "local", "web.home.lan", 5, "Caddy Local Authority - ECC Intermediate")
    write_cert(tmp_path, "acme-staging", "web.home.lan", 80, "Other CA")
    found = read_certificate(tmp_path, "web.home.lan")
    assert found is not None and found.issuer == "Other CA"
    assert 79 <= (found.expires_at - dt.datetime.now(dt.UTC)).days <= 80
    (tmp_path / "certificates" / "bad" / "x.lan").mkdir(parents=True)
    (tmp_path / "certificates" / "bad" / "x.lan" / "x.lan.crt").write_text("garbage")
    assert read_certificate(tmp_path, "x.lan") is None


@pytest.fixture
async def proxy(live: Services) -> AsyncIterator[ProxyService]:
    svc = live.proxy
    svc.gateway = FakeGateway(live.paths.root / "gateway")
    svc.settings = GatewaySettings(http_port=8080, https_port=8443,
                                   addresses=("203.0.113.7",))
    svc._resolver = FakeResolver()
    live.paths.server_info.write_text(json.dumps({"url": "http://127.0.0.1:8420"}))
    await svc.start()
    yield svc
    await svc.stop()


async def test_listing_shows_expiry_warnings_from_stored_certificates(
        live: Services, proxy: ProxyService) -> None:
    await install(live, "web", 18351)
    await proxy.set_base("home.lan", "auto")
    proxy.records.put("shop.example.org", "web", DomainState.ACTIVE.value)
    write_cert(proxy.gateway.storage, "local", "web.home.lan", 90, "Caddy Local Authority")
    write_cert(proxy.gateway.storage, "acme", "shop.example.org", 10, "Pebble Intermediate",
               age=80)
    found = {d.name: d for d in proxy.domains()}
    web, shop = found["web.home.lan"], found["shop.example.org"]
    assert web.issuer == "Caddy Local Authority" and web.warning is None
    assert web.expires_in_days in (89, 90)
    assert shop.issuer == "Pebble Intermediate" and shop.expires_in_days in (9, 10)
    assert shop.warning is not None and "renewal should have happened" in shop.warning
    read = await proxy.recheck()
    assert read.expiring == ["shop.example.org"]


async def test_recheck_flags_dangling_domains_and_clears_them_when_dns_is_back(
        live: Services, proxy: ProxyService) -> None:
    await install(live, "web", 18361)
    await proxy.set_base("box.example.com", "auto")
    resolver = proxy.resolver
    assert isinstance(resolver, FakeResolver)
    proxy.records.put("shop.example.org", "web", DomainState.ACTIVE.value)
    proxy.records.put("gone.example.org", "ghost", DomainState.ACTIVE.value)
    proxy.records.put("new.example.org", "web", DomainState.PENDING.value)
    resolver.answers["shop.example.org"] = Answer(addresses=("198.51.100.9",))
    read = await proxy.recheck()
    assert read.dangling == ["gone.example.org", "shop.example.org"] and read.checked == 1
    shop = {d.name: d for d in proxy.domains()}["shop.example.org"]
    assert shop.state == DomainState.DANGLING
    assert shop.error is not None and "DNS no longer reaches this box" in shop.error
    assert "shop.example.org. CNAME web.box.example.com." in shop.error
    assert shop.error_code == DomainError.DANGLING and shop.error_detail is not None
    dns = shop.error_detail.dns
    assert dns is not None and dns.problem_code == DnsProblem.POINTS_ELSEWHERE
    assert dns.addresses == ["198.51.100.9"] and dns.record_name == "shop.example.org"
    row = proxy.records.find("shop.example.org")
    assert row is not None and row.error_code == "dangling"
    assert json.loads(row.error_detail or "")["dns"]["problem_code"] == "points_elsewhere"
    assert "shop.example.org" in proxy.spec_hosts()  # still routed: it comes back by itself
    assert proxy.records.find("new.example.org").state == "pending"  # type: ignore[union-attr]
    resolver.answers["shop.example.org"] = Answer(cnames=("web.box.example.com",),
                                                  addresses=("203.0.113.7",))
    read = await proxy.recheck()
    assert read.dangling == ["gone.example.org"]
    shop = {d.name: d for d in proxy.domains()}["shop.example.org"]
    assert shop.state == DomainState.ACTIVE and shop.error is None
    assert shop.error_code is None and shop.error_detail is None


async def test_a_dangling_domain_s_dns_status_comes_from_its_stored_check(
        live: Services, proxy: ProxyService) -> None:
    """After a restart (no check in memory) the stored check says missing or wrong."""
    await install(live, "web", 18362)
    await proxy.set_base("box.example.com", "auto")
    for name, answer in (("gone.example.org", Answer()),
                         ("moved.example.org", Answer(addresses=("198.51.100.9",)))):
        proxy.records.put(name, "web", DomainState.ACTIVE.value)
        assert isinstance(proxy.resolver, FakeResolver)
        proxy.resolver.answers[name] = answer
    await proxy.recheck()
    proxy.dns_checks.clear()  # as after a restart
    for name in ("gone.example.org", "moved.example.org"):  # worded differently one day
        row = proxy.records.find(name)
        assert row is not None and row.error is not None
        proxy.records.update(name, state=DomainState.DANGLING.value, failure=DomainFailure(
            "DNS does not reach this box", DomainError.DANGLING, row.failure()[1]))
    found = {d.name: d.dns_status for d in proxy.domains()}
    assert found["gone.example.org"] == DnsStatus.MISSING
    assert found["moved.example.org"] == DnsStatus.WRONG


async def test_the_periodic_recheck_runs_by_itself(live: Services,
                                                   proxy: ProxyService) -> None:
    await proxy.stop()
    proxy.settings = GatewaySettings(http_port=8080, https_port=8443, recheck=1.0,
                                     addresses=("203.0.113.7",))
    await install(live, "web", 18371)
    proxy.records.put("shop.example.org", "web", DomainState.ACTIVE.value)
    await proxy.start()
    for _ in range(40):
        if proxy.last_recheck is not None:
            break
        await asyncio.sleep(0.1)
    assert proxy.last_recheck is not None
    assert proxy.last_recheck.dangling == ["shop.example.org"]


async def test_dangling_domains_are_flagged_on_a_fake_clock(live: Services,
                                                             proxy: ProxyService) -> None:
    await proxy.stop()
    proxy.settings = GatewaySettings(http_port=8080, https_port=8443, recheck=6 * 3600.0,
                                     addresses=("203.0.113.7",))
    clock = [0.0]

    async def fake_sleep(seconds: float) -> None:
        clock[0] += seconds  # the fake clock jumps; the loop gives way once
        await asyncio.sleep(0)

    proxy.sleep = fake_sleep
    await install(live, "web", 18391)
    await proxy.set_base("box.example.com", "auto")
    resolver = proxy.resolver
    assert isinstance(resolver, FakeResolver)
    resolver.answers["shop.example.org"] = Answer(cnames=("web.box.example.com",),
                                                  addresses=("203.0.113.7",))
    proxy.records.put("shop.example.org", "web", DomainState.ACTIVE.value)
    await proxy.start()
    # real time only bounds the waits (generously: CI runs this beside the integration suite);
    # the period is the fake clock's
    for _ in range(3000):
        if proxy.last_recheck is not None:
            break
        await asyncio.sleep(0.01)
    assert proxy.last_recheck is not None and proxy.last_recheck.dangling == []
    assert clock[0] >= 6 * 3600.0  # the first re-check came after one period
    resolver.answers["shop.example.org"] = Answer(addresses=("198.51.100.9",))  # DNS moved
    # the loop runs on while this test waits: a re-check already under way when DNS moved
    # may still report the old answer, so wait for the first one that saw the move
    for _ in range(3000):
        if proxy.last_recheck.dangling:
            break
        await asyncio.sleep(0.01)
    assert proxy.last_recheck.dangling == ["shop.example.org"]
    assert clock[0] >= 12 * 3600.0  # found by a later re-check, one period on at least
    assert proxy.records.find("shop.example.org").state == "dangling"  # type: ignore[union-attr]
    await proxy.stop()


async def test_protection_is_kept_and_guards_the_routes(live: Services,
                                                        proxy: ProxyService) -> None:
    await install(live, "web", 18381)
    await proxy.set_base("home.lan", "auto")
    with pytest.raises(NotFound):
        await proxy.protect("nope", True)
    assert proxy.protection("web").protected is False
    read = await proxy.protect("web", True)
    assert read.protected and read.hosts == ["web.home.lan"]
    # the web port is published on 127.0.0.1 only: a marker the compose adapter reads
    assert read.warning is None and read.local_port == 18381
    marker = live.paths.instance_dir("web") / LOOPBACK_FILE
    assert json.loads(marker.read_text()) == {"service": "web", "port": 80}
    assert proxy.protected_hosts() == {"web.home.lan": "web"}
    gateway = proxy.gateway
    assert isinstance(gateway, FakeGateway)
    route = gateway.configs[-1]["apps"]["http"]["servers"]["stackhub"]["routes"][0]
    uri = route["handle"][0]["routes"][1]["handle"][0]["rewrite"]["uri"]
    assert uri == f"/api/auth/forward?token={proxy.ask_token}"
    assert [d.protected for d in proxy.domains("web")] == [True]
    off = await proxy.protect("web", False)
    assert off.protected is False and off.local_port is None and not marker.exists()
    assert proxy.protected_hosts() == {}


async def test_protect_is_an_operation_and_a_failure_puts_everything_back(
        live: Services, proxy: ProxyService, monkeypatch: pytest.MonkeyPatch) -> None:
    await install(live, "web", 18382)
    read = await proxy.protect("web", True)
    op = live.runner.journal.operation(str(read.operation))
    assert (op.kind, op.instance, op.state) == ("protect", "web", "succeeded")
    assert [s.name for s in op.steps] == ["route", "publish"]
    marker = live.paths.instance_dir("web") / LOOPBACK_FILE
    held = live.runner.begin(PROTECT, "web")  # busy with another operation: 409
    with pytest.raises(Conflict):
        await proxy.protect("web", False)
    assert live.runner.journal.operations("web")[0].id == held.id  # nothing journaled
    live.runner.release(held)
    live.runner.journal.finish(held.id, OperationState.SUCCEEDED, instance_status=None)

    async def refuse(name: str) -> None:
        raise EngineError("compose up failed: port is already allocated")

    monkeypatch.setattr(live.apps, "up", refuse)
    with pytest.raises(EngineError):
        await proxy.protect("web", False)
    failed = live.runner.journal.operations("web")[0]
    assert (failed.kind, failed.state) == ("protect", "failed")
    assert "port is already allocated" in str(failed.error)
    assert proxy.protection("web").protected is True and marker.is_file()  # all put back
