"""DNS records at the provider: credentials mapped per provider, the wanted records, syncing.

Cloud providers (Cloudflare, Aliyun, Tencent Cloud, DNSPod, Route 53) cannot be reached from
the test machine: their credentials' mapping to lexicon is tested here; the records really
written are tested against BIND in tests/integration/test_dns_records.py and moto's Route 53
in tests/integration/test_dns_route53.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stackhub.adapters import dnsrecords, lego
from stackhub.errors import Conflict, DnsProviderRefused, GatewayUnavailable, Invalid
from stackhub.proxy import dnshook, providers, publish
from stackhub.proxy.models import DomainState
from stackhub.proxy.publish import PublishSettings, RecordPublisher, parse_address, wanted
from stackhub.proxy.service import BASE_KEY, GatewaySettings, ProxyService
from stackhub.services import Services
from tests.unit.proxy.test_service import FakeGateway, FakeResolver
from tests.unit.support import app_request

SECRET = "tok-3f9a-very-secret"


@pytest.mark.parametrize(("kind", "env", "lexicon", "options"), [
    ("cloudflare", {"CF_DNS_API_TOKEN": SECRET}, "cloudflare", {"auth_token": SECRET}),
    ("cloudflare", {"CF_API_EMAIL": "a@b.c", "CF_API_KEY": SECRET}, "cloudflare",
     {"auth_username": "a@b.c", "auth_token": SECRET}),
    ("alidns", {"ALICLOUD_ACCESS_KEY": "AK", "ALICLOUD_SECRET_KEY": SECRET}, "aliyun",
     {"auth_key_id": "AK", "auth_secret": SECRET}),
    ("tencentcloud", {"TENCENTCLOUD_SECRET_ID": "ID", "TENCENTCLOUD_SECRET_KEY": SECRET},
     "qcloud", {"secret_id": "ID", "secret_key": SECRET}),
    ("dnspod", {"DNSPOD_API_KEY": f"12345,{SECRET}"}, "dnspod",
     {"auth_username": "12345", "auth_token": SECRET}),
    ("route53", {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": SECRET,
                 "AWS_HOSTED_ZONE_ID": "Z1"}, "route53",
     {"auth_access_key": "AK", "auth_access_secret": SECRET, "zone_id": "Z1"}),
    ("rfc2136", {"RFC2136_NAMESERVER": "192.0.2.53:53", "RFC2136_TSIG_KEY": "k.",
                 "RFC2136_TSIG_SECRET": SECRET}, "ddns",
     {"ddns_server": "192.0.2.53", "auth_token": f"hmac-sha1:k:{SECRET}"}),
    ("rfc2136", {"RFC2136_NAMESERVER": "[2001:db8::53]:53", "RFC2136_TSIG_KEY": "k",
                 "RFC2136_TSIG_SECRET": SECRET, "RFC2136_TSIG_ALGORITHM": "hmac-sha256."},
     "ddns", {"ddns_server": "2001:db8::53", "auth_token": f"hmac-sha256:k:{SECRET}"}),
    ("pdns", {"PDNS_API_URL": "http://ns:8081", "PDNS_API_KEY": SECRET}, "powerdns",
     {"pdns_server": "http://ns:8081", "auth_token": SECRET}),
])
def test_credentials_map_to_lexicon_per_provider(kind: str, env: dict[str, str], lexicon: str,
                                                 options: dict[str, str]) -> None:
    assert set(env) <= set(lego.KINDS[kind].variables())  # the same keys lego reads
    assert dnsrecords.options(kind, env) == (lexicon, options)
    config = dnsrecords.Zone(kind, env, "example.com").config()
    assert config["provider_name"] == lexicon and config["domain"] == "example.com"
    assert config[lexicon] == {**options, "domain": "example.com"}


@pytest.mark.parametrize(("kind", "env", "message"), [
    ("httpreq", {"HTTPREQ_ENDPOINT": "http://x"}, "cannot manage DNS records with the httpreq"),
    ("exec", {"EXEC_PATH": "/bin/true"}, "cannot manage DNS records with the exec"),
    ("alidns", {"ALICLOUD_ACCESS_KEY": "AK"}, "needs ALICLOUD_SECRET_KEY"),
    ("dnspod", {"DNSPOD_API_KEY": SECRET}, "must be ID,TOKEN"),
    ("rfc2136", {"RFC2136_NAMESERVER": "192.0.2.53"}, "needs a TSIG key"),
    ("rfc2136", {"RFC2136_NAMESERVER": "192.0.2.53:5353", "RFC2136_TSIG_KEY": "k",
                 "RFC2136_TSIG_SECRET": SECRET}, "on port 53"),
    ("rfc2136", {"RFC2136_NAMESERVER": "ns.example.com", "RFC2136_TSIG_KEY": "k",
                 "RFC2136_TSIG_SECRET": SECRET}, "must be an IP address"),
])
def test_credentials_that_cannot_manage_records_are_refused(kind: str, env: dict[str, str],
                                                            message: str) -> None:
    with pytest.raises(Invalid, match=message) as caught:
        dnsrecords.options(kind, env)
    assert SECRET not in caught.value.message


async def test_names_outside_the_zone_and_other_types_are_refused() -> None:
    zone = dnsrecords.Zone("cloudflare", {"CF_DNS_API_TOKEN": SECRET}, "example.com")
    with pytest.raises(Invalid, match=r"not in the zone example\.com"):
        await dnsrecords.replace(zone, "web.example.org", "A", ("203.0.113.7",))
    with pytest.raises(Invalid, match="record type MX"):
        await dnsrecords.add(zone, "example.com", "MX", "10 mail.example.com")
    assert dnsrecords.content_for("rfc2136", "CNAME", "web.example.com") == "web.example.com."
    assert dnsrecords.content_for("cloudflare", "CNAME", "web.example.com") == \
        "web.example.com"


def test_the_wanted_records() -> None:
    found = wanted(zone="example.com", base="box.example.com", address="203.0.113.7",
                   domains=[("cloud.example.com", "nextcloud"), ("example.com", "site"),
                            ("shop.other.org", "shop")])
    assert found == {("box.example.com", "A"): "203.0.113.7",
                     ("*.box.example.com", "A"): "203.0.113.7",
                     ("cloud.example.com", "CNAME"): "nextcloud.box.example.com",
                     ("example.com", "A"): "203.0.113.7"}  # no CNAME at the apex
    six = wanted(zone="example.com", base="example.com", address="2001:db8::7", domains=[])
    assert six == {("example.com", "AAAA"): "2001:db8::7",
                   ("*.example.com", "AAAA"): "2001:db8::7"}
    assert wanted(zone="example.com", base="box.other.org", address="203.0.113.7",
                  domains=[]) == {}


def test_the_public_address_and_settings_are_checked() -> None:
    assert parse_address(" 203.0.113.7\n", "src") == "203.0.113.7"
    with pytest.raises(GatewayUnavailable, match="did not answer with an IP address"):
        parse_address("<html>", "https://ip.example")
    settings = PublishSettings.from_env({"STACKHUB_PUBLIC_IP_URL": "http://127.0.0.1:9/",
                                         "STACKHUB_PUBLIC_IP_EVERY": "soon"})
    assert settings.source == "http://127.0.0.1:9/" and settings.every == publish.EVERY
    assert PublishSettings.from_env({}).source == publish.SOURCE


@pytest.fixture
async def proxy(live: Services) -> AsyncIterator[ProxyService]:
    svc = live.proxy
    svc.gateway = FakeGateway(live.paths.root / "gateway")
    svc.settings = GatewaySettings(http_port=8080, https_port=8443, addresses=("203.0.113.7",))
    svc._resolver = FakeResolver()
    live.paths.server_info.write_text(json.dumps({"url": "http://127.0.0.1:8420"}))
    yield svc


class FakeProvider:
    """Stands for the adapter's writes (the layer above the adapter is under test)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, tuple[str, ...]]] = []
        self.refuse = False

    async def replace(self, zone: dnsrecords.Zone, name: str, rtype: str,
                      contents: tuple[str, ...], **_: object) -> None:
        if self.refuse:
            raise DnsProviderRefused("the DNS provider (cloudflare) refused: 403")
        self.calls.append(("replace", name, rtype, contents))

    async def delete(self, zone: dnsrecords.Zone, name: str, rtype: str,
                     content: str | None = None, **_: object) -> None:
        self.calls.append(("delete", name, rtype, ()))


async def test_records_follow_the_public_address_and_the_domains(
        live: Services, proxy: ProxyService, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    fake = FakeProvider()
    monkeypatch.setattr(dnsrecords, "replace", fake.replace)
    monkeypatch.setattr(dnsrecords, "delete", fake.delete)
    address = ["203.0.113.7"]
    clock = [datetime(2026, 6, 1, 12, 0, tzinfo=UTC)]

    async def fetch(source: str) -> str:
        assert source == "http://ip.test/"
        return address[0]

    publisher = RecordPublisher(proxy=proxy, settings=PublishSettings(source="http://ip.test/"),
                                fetch=fetch, clock=lambda: clock[0])
    with pytest.raises(Conflict, match="no DNS provider"):
        await publisher.sync()
    assert publisher.read().managed is False and fake.calls == []
    fake_lego = tmp_path / "lego"
    fake_lego.write_bytes(b"providers/dns/exec.New providers/dns/route53.New")
    monkeypatch.setenv("STACKHUB_LEGO_BIN", str(fake_lego))
    proxy.providers.set("cloudflare", {"CF_DNS_API_TOKEN": SECRET}, None, "Example.COM")
    proxy.records.set_setting(BASE_KEY, "box.example.com")
    await live.apps.install(app_request(name="blog", values={"WEB_PORT": "18090"}))
    proxy.records.put("cloud.example.com", "blog", DomainState.ACTIVE.value)
    proxy.records.put("gone.example.com", "ghost", DomainState.DANGLING.value)
    read = await publisher.sync()
    assert read.zone == "example.com" and read.public_ip == "203.0.113.7"
    assert sorted(fake.calls) == [
        ("replace", "*.box.example.com", "A", ("203.0.113.7",)),
        ("replace", "box.example.com", "A", ("203.0.113.7",)),
        ("replace", "cloud.example.com", "CNAME", ("blog.box.example.com",))]
    assert all(r.published for r in read.records) and read.synced_at == clock[0].isoformat()
    fake.calls.clear()
    clock[0] += timedelta(minutes=5)
    await publisher.sync()
    assert fake.calls == []  # nothing changed: nothing sent
    address[0] = "203.0.113.8"
    proxy.records.delete("cloud.example.com")
    read = await publisher.sync()
    assert sorted(fake.calls) == [
        ("delete", "cloud.example.com", "CNAME", ()),
        ("replace", "*.box.example.com", "A", ("203.0.113.8",)),
        ("replace", "box.example.com", "A", ("203.0.113.8",))]
    assert read.checked_at == clock[0].isoformat()
    fake.refuse = True
    address[0] = "203.0.113.9"
    with pytest.raises(DnsProviderRefused):
        await publisher.sync()
    read = publisher.read()
    assert read.error is not None and "refused" in read.error
    assert not any(r.published for r in read.records)  # shown as not yet published
    assert SECRET not in read.model_dump_json()


async def test_written_records_are_remembered_across_a_restart(
        live: Services, proxy: ProxyService, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """A new publisher (a restarted server) reads what was written from the database."""
    fake = FakeProvider()
    monkeypatch.setattr(dnsrecords, "replace", fake.replace)
    monkeypatch.setattr(dnsrecords, "delete", fake.delete)
    fake_lego = tmp_path / "lego"
    fake_lego.write_bytes(b"providers/dns/exec.New")
    monkeypatch.setenv("STACKHUB_LEGO_BIN", str(fake_lego))
    proxy.providers.set("cloudflare", {"CF_DNS_API_TOKEN": SECRET}, None, "example.com")
    proxy.records.set_setting(BASE_KEY, "box.example.com")

    async def fetch(source: str) -> str:
        return "203.0.113.7"

    def publisher() -> RecordPublisher:
        return RecordPublisher(proxy=proxy, settings=PublishSettings(source="http://ip.test/"),
                               fetch=fetch)

    await publisher().sync()
    assert len(fake.calls) == 2
    assert proxy.records.dns_published() == {
        ("example.com", "box.example.com", "A"): ("203.0.113.7", True),
        ("example.com", "*.box.example.com", "A"): ("203.0.113.7", True)}
    fake.calls.clear()
    restarted = publisher()
    read = await restarted.sync()
    assert fake.calls == [] and all(r.published for r in read.records)  # nothing re-sent
    # a write cut short (saved, never marked written) is sent again; a base changed while
    # stopped leaves the old names, which the restarted server deletes
    proxy.records.set_dns_published("example.com", "box.example.com", "A", "203.0.113.7",
                                    written=False)
    proxy.records.set_setting(BASE_KEY, "home.example.com")
    await publisher().sync()
    assert sorted(fake.calls) == [
        ("delete", "*.box.example.com", "A", ()), ("delete", "box.example.com", "A", ()),
        ("replace", "*.home.example.com", "A", ("203.0.113.7",)),
        ("replace", "home.example.com", "A", ("203.0.113.7",))]
    assert set(proxy.records.dns_published()) == {("example.com", "home.example.com", "A"),
                                                  ("example.com", "*.home.example.com", "A")}
    # a refused delete keeps the row, so the next sync tries again
    fake.calls.clear()
    proxy.records.set_setting(BASE_KEY, None)

    async def refuse(*_: object, **__: object) -> None:
        raise DnsProviderRefused("the DNS provider (cloudflare) refused: 403")

    monkeypatch.setattr(dnsrecords, "delete", refuse)
    with pytest.raises(DnsProviderRefused):
        await publisher().sync()
    assert len(proxy.records.dns_published()) == 2
    monkeypatch.setattr(dnsrecords, "delete", fake.delete)
    await publisher().sync()
    assert proxy.records.dns_published() == {} and len(fake.calls) == 2
    # records left in a zone the provider no longer manages: tried, kept, reported, no raise
    proxy.records.set_dns_published("old.example", "box.old.example", "A", "203.0.113.7",
                                    written=True)
    monkeypatch.setattr(dnsrecords, "delete", refuse)
    read = await publisher().sync()
    assert read.error is not None and "zone old.example" in read.error
    assert SECRET not in read.error
    assert list(proxy.records.dns_published()) == [("old.example", "box.old.example", "A")]


def test_dns01_runs_through_lego_exec_and_lexicon_when_lego_lacks_the_provider(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "lego"
    fake.write_bytes(b"\x7fELF... providers/dns/exec.NewDNSProvider ...")
    monkeypatch.setenv("STACKHUB_LEGO_BIN", str(fake))
    store = providers.ProviderStore(tmp_path)
    stored = store.set("cloudflare", {"CF_DNS_API_TOKEN": SECRET}, None, "example.com")
    assert providers.through_exec(stored.kind)
    shown = providers.read(stored)
    assert shown.via_exec and shown.records and shown.zone == "example.com"
    with pytest.raises(Invalid, match="built without the httpreq provider"):
        store.set("httpreq", {"HTTPREQ_ENDPOINT": "http://x"}, None)
    assert store.get() == stored  # the refused one changed nothing
    with pytest.raises(Invalid, match="DNS zone"):
        store.set("cloudflare", {"CF_DNS_API_TOKEN": SECRET}, None, "not a zone!")
    kinds = {k.kind: k for k in providers.kinds()}
    assert kinds["cloudflare"].available and kinds["cloudflare"].via_exec
    assert not kinds["httpreq"].available and not kinds["httpreq"].records
    hook = dnshook.script(tmp_path / "lego-data")
    assert hook.stat().st_mode & 0o777 == 0o700 and "dnshook" in hook.read_text()
    extra = dnshook.settings("cloudflare", "example.com", hook)
    env = lego.environment(stored.env, home=tmp_path, extra=extra)
    assert env["EXEC_PATH"] == str(hook) and env["STACKHUB_DNS_KIND"] == "cloudflare"
    assert env["CF_DNS_API_TOKEN"] == SECRET and SECRET not in extra.values()


def test_the_hook_refuses_bad_calls(capsys: pytest.CaptureFixture[str]) -> None:
    assert dnshook.main(["present", "x"], env={}) == 2
    assert dnshook.main(["remove", "a", "b"], env={}) == 2
    assert dnshook.main(["present", "_acme-challenge.example.com.", "v"], env={}) == 2
    assert "STACKHUB_DNS_KIND" in capsys.readouterr().out
    assert dnshook.main(["present", "_acme-challenge.example.org.", "v"], env={
        "STACKHUB_DNS_KIND": "cloudflare", "STACKHUB_DNS_ZONE": "example.com",
        "CF_DNS_API_TOKEN": SECRET}) == 1
    out = capsys.readouterr().out
    assert "not in the zone example.com" in out and SECRET not in out


class _Refused(Exception):
    """Shaped like botocore's ClientError: a `response` dict."""

    def __init__(self, response: dict[str, object]) -> None:
        super().__init__("An error occurred () when calling the ListHostedZonesByName operation")
        self.response = response


def test_a_refused_key_is_named_in_the_error() -> None:
    moto_shape = _Refused({"Error": {"Code": ""}, "Errors": {"Error": {
        "Code": "InvalidClientTokenId", "Message": "The security token is invalid."}},
        "ResponseMetadata": {"HTTPStatusCode": 403}})
    detail = dnsrecords._detail(moto_shape)
    assert "InvalidClientTokenId: The security token is invalid." in detail
    assert "HTTP 403: the provider did not accept the credentials" in detail
    assert dnsrecords._detail(ValueError("No record found")) == ""
    server_error = _Refused({"Error": {"Code": "Throttling", "Message": "slow down"},
                             "ResponseMetadata": {"HTTPStatusCode": 400}})
    assert dnsrecords._detail(server_error) == " (Throttling: slow down)"


def test_a_route53_endpoint_from_the_environment_is_logged_once(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_ROUTE_53", raising=False)
    assert dnsrecords.route53_endpoint() is None
    monkeypatch.setenv("AWS_ENDPOINT_URL_ROUTE_53", "http://127.0.0.1:4566")
    with caplog.at_level("WARNING", logger="stackhub.gateway"):
        assert dnsrecords.route53_endpoint() == "http://127.0.0.1:4566"
        assert dnsrecords.route53_endpoint() == "http://127.0.0.1:4566"
    told = [r.getMessage() for r in caplog.records if "Route 53 endpoint" in r.getMessage()]
    assert told == ["gateway: DNS records go to the Route 53 endpoint http://127.0.0.1:4566 "
                    "(from AWS_ENDPOINT_URL_ROUTE_53 in the server's environment), not AWS"]
