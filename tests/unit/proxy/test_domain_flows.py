"""The `domain` operation in a zone StackHub manages: the record first, then DNS, route, TLS."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stackhub.adapters import caddy, dnsrecords
from stackhub.adapters.dns import Answer
from stackhub.errors import DnsProviderRefused, GatewayUnavailable, Invalid
from stackhub.proxy import flows as flows_module
from stackhub.proxy.models import (
    DnsCheck,
    DnsProblem,
    DnsRecord,
    DnsStatus,
    DomainError,
    DomainErrorDetail,
    DomainRead,
    DomainState,
)
from stackhub.proxy.service import BASE_KEY, GatewaySettings, ProxyService, Served
from stackhub.services import Services
from tests.unit.proxy.test_service import FakeGateway, FakeResolver
from tests.unit.support import app_request

SECRET = "cf-token-for-the-flow-test"


class World:
    """The provider, DNS and gateway as one ordered log of what happened."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.records: dict[str, str] = {}
        self.refuse = False
        self.propagation = 2
        """Lookups that still miss a written record (it is propagating)."""

    async def replace(self, zone: dnsrecords.Zone, name: str, rtype: str,
                      contents: tuple[str, ...], **_: object) -> None:
        if self.refuse:
            raise DnsProviderRefused("the DNS provider (cloudflare) refused: 403")
        self.log.append(f"write {rtype} {name} {contents[0]}")
        self.records[name] = contents[0]

    async def delete(self, zone: dnsrecords.Zone, name: str, rtype: str,
                     content: str | None = None, **_: object) -> None:
        self.log.append(f"delete {rtype} {name}")
        self.records.pop(name, None)

    def lookup(self, name: str) -> Answer:
        target = self.records.get(name)
        if target is not None and self.propagation > 0:
            self.propagation -= 1
            target = None
        self.log.append(f"lookup {name} -> {target}")
        return Answer(cnames=(target,)) if target else Answer()


@pytest.fixture
async def world(live: Services, monkeypatch: pytest.MonkeyPatch,
                tmp_path: Path) -> AsyncIterator[World]:
    """A cloudflare provider managing example.com, base box.example.com, app `web` installed."""
    found = World()
    proxy = live.proxy
    proxy.gateway = FakeGateway(live.paths.root / "gateway")
    proxy.settings = GatewaySettings(http_port=8080, https_port=8443,
                                     addresses=("203.0.113.7",), timeout=20.0)
    proxy._resolver = found
    live.paths.server_info.write_text(json.dumps({"url": "http://127.0.0.1:8420"}))
    monkeypatch.setattr(dnsrecords, "replace", found.replace)
    monkeypatch.setattr(dnsrecords, "delete", found.delete)
    monkeypatch.setattr(flows_module, "DNS_RETRY", 0.01)
    fake_lego = tmp_path / "lego"
    fake_lego.write_bytes(b"providers/dns/exec.New")
    monkeypatch.setenv("STACKHUB_LEGO_BIN", str(fake_lego))
    proxy.providers.set("cloudflare", {"CF_DNS_API_TOKEN": SECRET}, None, "example.com")
    proxy.records.set_setting(BASE_KEY, "box.example.com")
    proxy.records.set_setting("tls", "acme")

    async def serves(domain: str) -> Served:
        found.log.append(f"serve {domain}")
        return Served(issuer="Test CA", expires_at="2027-01-01T00:00:00+00:00",
                      status="HTTP/1.1 200 OK")

    async def apply() -> None:
        found.log.append("load")

    monkeypatch.setattr(proxy, "serves", serves)
    monkeypatch.setattr(proxy, "apply", apply)
    await live.apps.install(app_request(name="web", values={"WEB_PORT": "18351"}))
    await asyncio.wait_for(live.runner.tasks["web"], 30)
    yield found


async def finish(live: Services, op_id: str) -> None:
    await asyncio.wait_for(live.runner.tasks["web"], 10)
    for _ in range(2000):
        if live.apps.operation(op_id).state != "running":
            return
        await asyncio.sleep(0.01)


async def test_the_record_is_created_then_resolved_then_routed_and_served(
        live: Services, world: World) -> None:
    accepted = await live.domains.add("web", "Shop.Example.com")
    assert world.log == ["lookup shop.example.com -> None"]  # missing: the operation writes it
    await finish(live, accepted.operation.id)
    op = live.apps.operation(accepted.operation.id)
    assert op.state == "succeeded", op.error
    assert [s.name for s in op.steps] == ["dns-record", "dns", "route", "certificate"]
    assert world.log == [
        "lookup shop.example.com -> None",
        "write CNAME shop.example.com web.box.example.com",
        "lookup shop.example.com -> None", "lookup shop.example.com -> None",
        "lookup shop.example.com -> web.box.example.com", "load", "serve shop.example.com"]
    row = live.proxy.records.find("shop.example.com")
    assert row is not None and row.state == DomainState.ACTIVE.value
    assert live.proxy.records.dns_published() == {
        ("example.com", "shop.example.com", "CNAME"): ("web.box.example.com", True)}
    # removing the domain deletes the record StackHub created
    world.log.clear()
    assert await live.domains.remove("web", "shop.example.com") == ["CNAME shop.example.com"]
    assert world.log == ["delete CNAME shop.example.com"]
    assert live.proxy.records.find("shop.example.com") is None
    assert live.proxy.records.dns_published() == {}


async def test_a_refused_record_fails_the_add_and_leaves_nothing(live: Services,
                                                                 world: World) -> None:
    world.refuse = True
    accepted = await live.domains.add("web", "shop.example.com")
    await finish(live, accepted.operation.id)
    op = live.apps.operation(accepted.operation.id)
    assert op.state == "failed"
    assert op.error is not None and "could not create the DNS record of shop.example.com" \
        in op.error and "refused: 403" in op.error and SECRET not in op.error
    assert [s.name for s in op.steps] == ["dns-record"]
    assert live.proxy.records.find("shop.example.com") is None
    assert live.proxy.records.dns_published() == {}
    assert world.log[0] == "lookup shop.example.com -> None"  # missing: so it was written
    assert not any(entry.startswith(("lookup", "load", "serve")) for entry in world.log[1:])


async def test_a_record_that_never_resolves_fails_and_is_deleted(live: Services,
                                                                 world: World) -> None:
    world.propagation = 10_000
    live.proxy.settings = replace(live.proxy.settings, timeout=1.0)  # gives up after 1 s
    accepted = await live.domains.add("web", "shop.example.com")
    await finish(live, accepted.operation.id)
    op = live.apps.operation(accepted.operation.id)
    assert op.state == "failed"
    assert op.error is not None and "StackHub created shop.example.com. CNAME " \
        "web.box.example.com. at the DNS provider, but shop.example.com did not lead" in op.error
    row = live.proxy.records.find("shop.example.com")
    assert row is not None and row.state == DomainState.FAILED.value and row.error == op.error
    shown = {d.name: d for d in live.proxy.domains("web")}["shop.example.com"]
    assert shown.error_code == DomainError.DNS_TIMEOUT and shown.error_detail is not None
    assert shown.error_detail.seconds == 1
    assert shown.error_detail.record == "shop.example.com. CNAME web.box.example.com."
    dns = shown.error_detail.dns
    assert dns is not None and dns.problem_code == DnsProblem.NO_RECORD
    for _ in range(2000):  # the record is deleted in the background
        if "delete CNAME shop.example.com" in world.log:
            break
        await asyncio.sleep(0.01)
    assert world.log[-1] == "delete CNAME shop.example.com" and "load" not in world.log
    assert live.proxy.records.dns_published() == {}


async def test_a_record_pointing_elsewhere_in_the_managed_zone_is_never_replaced(
        live: Services, world: World) -> None:
    world.records["shop.example.com"] = "shop.other-host.example.net"
    world.propagation = 0
    with pytest.raises(Invalid, match="does not replace a record that points elsewhere"):
        await live.domains.add("web", "shop.example.com")
    assert world.log == ["lookup shop.example.com -> shop.other-host.example.net"]
    assert world.records == {"shop.example.com": "shop.other-host.example.net"}
    assert live.proxy.records.find("shop.example.com") is None
    assert live.proxy.records.dns_published() == {}


async def test_a_record_already_right_in_the_managed_zone_is_kept_as_it_is(
        live: Services, world: World) -> None:
    world.records["shop.example.com"] = "web.box.example.com"
    world.propagation = 0
    accepted = await live.domains.add("web", "shop.example.com")
    await finish(live, accepted.operation.id)
    op = live.apps.operation(accepted.operation.id)
    assert op.state == "succeeded", op.error
    assert [s.name for s in op.steps] == ["route", "certificate"]
    assert not any(entry.startswith("write") for entry in world.log)
    assert live.proxy.records.dns_published() == {}
    assert await live.domains.remove("web", "shop.example.com") == []  # not StackHub's
    assert world.records == {"shop.example.com": "web.box.example.com"}


async def test_outside_the_managed_zone_dns_is_checked_first(live: Services,
                                                             world: World) -> None:
    with pytest.raises(Invalid, match=re.escape("has no DNS record: create shop.example.org. "
                                                "CNAME web.box.example.com.")):
        await live.domains.add("web", "shop.example.org")
    assert world.log == ["lookup shop.example.org -> None"]  # looked up, nothing written
    assert live.proxy.records.find("shop.example.org") is None
    assert live.runner.tasks.get("web") is None or live.runner.tasks["web"].done()


async def test_the_apex_gets_an_a_record_to_the_public_address(
        live: Services, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    live.dns_records.address = "203.0.113.7"
    world.propagation = 0
    proxy: ProxyService = live.proxy

    def apex(name: str) -> Answer:
        world.log.append(f"lookup {name}")
        return Answer(addresses=(world.records[name],)) if name in world.records else Answer()

    monkeypatch.setattr(world, "lookup", apex)
    proxy._resolver = world
    accepted = await live.domains.add("web", "example.com")
    await finish(live, accepted.operation.id)
    assert live.apps.operation(accepted.operation.id).state == "succeeded"
    assert world.log[:3] == ["lookup example.com", "write A example.com 203.0.113.7",
                             "lookup example.com"]


def _self_signed(folder: Path, host: str) -> tuple[Path, Path]:
    """Write a self-signed certificate and key for `host`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flow test CA")])
    start = datetime.now(UTC) - timedelta(hours=1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.mark.parametrize(("head", "page"), [
    ("HTTP/1.1 502 Bad Gateway\r\nX-StackHub-Page: not-answering\r\n", caddy.UNREACHABLE),
    ("HTTP/1.1 503 Service Unavailable\r\nx-stackhub-page: unavailable\r\n", caddy.STOPPED),
    ("HTTP/1.1 502 Bad Gateway\r\nServer: the-app\r\n", None),  # the app's own 502
    ("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n", None),
])
async def test_serves_tells_the_gateways_own_pages_from_the_app(
        live: Services, tmp_path: Path, head: str, page: str | None) -> None:
    cert, key = _self_signed(tmp_path, "shop.example.org")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()).strip():
            pass
        writer.write(f"{head}Content-Length: 2\r\n\r\nok".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    live.proxy.settings = GatewaySettings(https_port=port, acme_roots=(str(cert),))
    try:
        served = await live.proxy.serves("shop.example.org")
    finally:
        server.close()
    assert served.status == head.split("\r\n")[0] and served.page == page
    assert served.issuer == "flow test CA"
    problem = served.app_problem("web")
    assert (problem is None) == (page is None)
    if page == caddy.UNREACHABLE:
        assert problem is not None and "web does not answer" in problem.text \
            and "certificate is in place" in problem.text
        assert problem.code == DomainError.APP_NOT_ANSWERING
        assert problem.detail == DomainErrorDetail(status=served.status)
    if page == caddy.STOPPED:
        assert problem is not None and problem.code == DomainError.APP_UNAVAILABLE
        assert problem.detail == DomainErrorDetail(status=served.status)


async def test_a_domain_binds_even_when_the_app_does_not_answer(
        live: Services, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.propagation = 0
    pages = [caddy.NO_ROUTE, caddy.UNREACHABLE]

    async def serves(domain: str) -> Served:
        page = pages.pop(0)
        world.log.append(f"serve {domain} {page}")
        return Served(issuer="Test CA", expires_at="2027-01-01T00:00:00+00:00",
                      status="HTTP/1.1 502 Bad Gateway", page=page)

    monkeypatch.setattr(flows_module, "RETRY", 0.01)
    monkeypatch.setattr(live.proxy, "serves", serves)
    accepted = await live.domains.add("web", "shop.example.com")
    await finish(live, accepted.operation.id)
    op = live.apps.operation(accepted.operation.id)
    assert op.state == "succeeded", op.error
    assert world.log[-2:] == ["serve shop.example.com no-app",
                              "serve shop.example.com not-answering"]
    row = live.proxy.records.find("shop.example.com")
    assert row is not None and row.state == DomainState.ACTIVE.value
    assert row.error is not None and "web does not answer" in row.error
    shown = {d.name: d for d in live.proxy.domains("web")}["shop.example.com"]
    assert shown.error == row.error and shown.issuer == "Test CA"
    assert shown.error_code == DomainError.APP_NOT_ANSWERING
    assert shown.error_detail == DomainErrorDetail(status="HTTP/1.1 502 Bad Gateway")


async def test_domains_show_their_dns_status_and_the_record_to_create(
        live: Services, world: World) -> None:
    proxy = live.proxy
    resolver = FakeResolver()
    proxy._resolver = resolver
    for name in ("fine.example.org", "gone.example.org", "moved.example.org", "new.example.org"):
        proxy.records.put(name, "web", DomainState.ACTIVE.value)
    proxy.records.put("new.example.org", "web", DomainState.PENDING.value)
    proxy.records.put("orphan.example.org", "ghost", DomainState.ACTIVE.value)
    resolver.answers["fine.example.org"] = Answer(cnames=("web.box.example.com",))
    resolver.answers["moved.example.org"] = Answer(addresses=("198.51.100.9",))
    await proxy.recheck()
    proxy.wildcard_dns = None  # *.<base> not checked (yet)

    def shown() -> dict[str, DomainRead]:
        return {d.name: d for d in proxy.domains()}

    found = shown()
    assert (found["fine.example.org"].dns_status, found["fine.example.org"].record) \
        == (DnsStatus.OK, None)
    assert found["gone.example.org"].dns_status == DnsStatus.MISSING
    assert found["gone.example.org"].record == DnsRecord(
        type="CNAME", name="gone.example.org", value="web.box.example.com")
    assert found["moved.example.org"].dns_status == DnsStatus.WRONG
    assert found["moved.example.org"].record is not None
    assert found["new.example.org"].dns_status == DnsStatus.UNCHECKED  # pending, not looked up
    assert found["new.example.org"].record is None
    assert found["orphan.example.org"].record is None  # its app is gone: nothing to point
    assert found["web.box.example.com"].dns_status is None  # *.<base> never checked
    # the status survives a restart through the row's state (no check in memory)
    proxy.dns_checks.clear()
    found = shown()
    assert found["gone.example.org"].dns_status == DnsStatus.MISSING
    assert found["moved.example.org"].dns_status == DnsStatus.WRONG
    assert found["fine.example.org"].dns_status == DnsStatus.OK
    # the automatic names follow the *.<base> check; a removed domain forgets its check
    await proxy.check_wildcard("box.example.com")
    auto = shown()["web.box.example.com"]
    assert auto.dns_status == DnsStatus.MISSING and auto.record == DnsRecord(
        type="A", name="*.box.example.com", value="203.0.113.7")
    await proxy.check("gone.example.org")
    await live.domains.remove("web", "gone.example.org")
    assert "gone.example.org" not in proxy.dns_checks


async def failed_row(live: Services, domain: str) -> DomainRead:
    """Add `domain` to web, wait for the operation to fail; return the domain as listed."""
    accepted = await live.domains.add("web", domain)
    await finish(live, accepted.operation.id)
    op = live.apps.operation(accepted.operation.id)
    assert op.state == "failed"
    shown = {d.name: d for d in live.proxy.domains("web")}[domain]
    assert shown.state == DomainState.FAILED and shown.error == op.error
    return shown


async def test_a_certificate_failure_is_stored_with_its_code(
        live: Services, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.records["shop.example.com"] = "web.box.example.com"
    world.propagation = 0
    rejected = ("could not get certificate from issuer: HTTP 400 urn:ietf:params:acme:error:"
                "rejectedIdentifier - forbidden by policy")
    monkeypatch.setattr(live.proxy.gateway, "errors", lambda name, since: [rejected])
    shown = await failed_row(live, "shop.example.com")
    assert shown.error is not None and shown.error.startswith(
        "the certificate authority refuses to issue a certificate for shop.example.com")
    assert shown.error_code == DomainError.REJECTED_IDENTIFIER
    assert shown.error_detail == DomainErrorDetail(detail="forbidden by policy")


async def test_https_that_never_comes_is_stored_as_a_timeout(
        live: Services, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.records["shop.example.com"] = "web.box.example.com"
    world.propagation = 0
    live.proxy.settings = replace(live.proxy.settings, timeout=0.5)

    async def serves(domain: str) -> Served:
        return Served(issuer="", expires_at="", status="HTTP/1.1 404", page=caddy.NO_ROUTE)

    monkeypatch.setattr(flows_module, "RETRY", 0.01)
    monkeypatch.setattr(live.proxy, "serves", serves)
    shown = await failed_row(live, "shop.example.com")
    assert shown.error is not None and "did not serve over HTTPS within 0 s" in shown.error
    assert shown.error_code == DomainError.HTTPS_TIMEOUT
    detail = shown.error_detail
    assert detail is not None and detail.seconds == 0 and detail.detail  # the last reason
    assert f"within 0 s: {detail.detail}; check" in shown.error


async def test_a_gateway_that_cannot_load_is_stored_with_its_reason(
        live: Services, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.records["shop.example.com"] = "web.box.example.com"
    world.propagation = 0

    async def apply() -> None:
        raise GatewayUnavailable("port 80 is taken by nginx (pid 7)")

    monkeypatch.setattr(live.proxy, "apply", apply)
    shown = await failed_row(live, "shop.example.com")
    assert shown.error == "port 80 is taken by nginx (pid 7)"
    assert shown.error_code == DomainError.GATEWAY_DOWN
    assert shown.error_detail == DomainErrorDetail(detail="port 80 is taken by nginx (pid 7)")


async def test_a_caa_record_found_while_waiting_is_stored_with_the_check(
        live: Services, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    caa = DnsCheck(domain="shop.example.com", ok=False, cnames=[], addresses=[],
                   box_addresses=["203.0.113.7"], expected=[], problem="a CAA record forbids",
                   fix="add a CAA record", problem_code=DnsProblem.CAA_FORBIDS,
                   record_name="shop.example.com", ca="letsencrypt.org")

    async def check(domain: str, instance: str | None = None) -> DnsCheck:
        return caa

    monkeypatch.setattr(live.proxy, "check", check)
    shown = await failed_row(live, "shop.example.com")
    assert shown.error == "a CAA record forbids: add a CAA record"
    assert shown.error_code == DomainError.DNS_REFUSED
    assert shown.error_detail == DomainErrorDetail(dns=caa)


async def test_a_binding_cut_short_by_a_crash_is_stored_as_interrupted(
        live: Services, world: World) -> None:
    live.proxy.records.put("shop.example.com", "web", DomainState.PENDING.value)
    live.proxy.records.put("ok.example.com", "web", DomainState.ACTIVE.value)
    op = live.runner.journal.start(flows_module.DOMAIN.name, "web", status=None)
    await live.domains._after_crash(op)
    found = {d.name: d for d in live.proxy.domains("web")}
    shop = found["shop.example.com"]
    assert shop.state == DomainState.FAILED
    assert shop.error == ("StackHub stopped while binding this domain; run `stackhub domain "
                          "add` again")
    assert shop.error_code == DomainError.INTERRUPTED and shop.error_detail is None
    assert found["ok.example.com"].error_code is None
