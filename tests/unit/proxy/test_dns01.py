"""DNS-01 wildcards: lego's arguments and environment, its errors, credentials, renewal."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stackhub.adapters import caddy, lego
from stackhub.adapters.dns import Answer
from stackhub.errors import CaRefused, Conflict, DnsPropagationTimeout, DnsProviderRefused, Invalid
from stackhub.proxy import providers
from stackhub.proxy.dns01 import Dns01Settings, WildcardFlows, due
from stackhub.proxy.models import TlsMode
from stackhub.proxy.service import BASE_KEY, TLS_KEY, GatewaySettings, ProxyService
from stackhub.services import Services
from tests.unit.proxy.test_service import FakeGateway, FakeResolver, routes
from tests.unit.support import app_request

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SECRET = "tok-3f9a-very-secret"


def request(**changes: object) -> lego.Request:
    base = lego.Request(base="box.example.com", email="me@example.com",
                        ca="https://ca.test/dir", path=Path("/data/secrets/lego"),
                        provider="cloudflare")
    return lego.Request(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def test_arguments_are_a_list_with_values_bound_to_their_flags() -> None:
    args = lego.arguments(request(resolvers=("127.0.0.1:53",), propagation_check=False))
    assert args == ["--accept-tos", "--email=me@example.com", "--server=https://ca.test/dir",
                    "--path=/data/secrets/lego", "--key-type=ec256", "--dns=cloudflare",
                    "--dns.resolvers=127.0.0.1:53", "--dns.disable-cp",
                    "--domains=*.box.example.com", "--domains=box.example.com", "run"]
    renew = lego.arguments(request(renew=True))
    assert renew[-3:] == ["renew", "--days=30", "--no-random-sleep"]
    assert "--dns.disable-cp" not in renew


def test_credentials_go_only_to_the_environment() -> None:
    env = lego.environment({"CF_DNS_API_TOKEN": SECRET}, roots=("/a.pem", "/b.pem"),
                           home=Path("/data/secrets/lego"))
    assert env == {"PATH": lego.SAFE_PATH, "HOME": "/data/secrets/lego", "LANG": "C.UTF-8",
                   "LEGO_CA_CERTIFICATES": "/a.pem:/b.pem", "CF_DNS_API_TOKEN": SECRET}
    assert not any(SECRET in a for a in lego.arguments(request()))


def test_provider_kinds_map_to_lego_names_and_variables() -> None:
    assert providers.kind_of("Cloudflare").lego == "cloudflare"
    assert providers.kind_of("aliyun").kind == "alidns"
    assert providers.kind_of("dnspod-tencent").lego == "tencentcloud"
    assert "TENCENTCLOUD_SECRET_ID" in lego.KINDS["tencentcloud"].variables()
    assert "RFC2136_PROPAGATION_TIMEOUT" in lego.KINDS["rfc2136"].variables()
    assert {"route53", "rfc2136", "exec", "cloudflare", "alidns", "dnspod"} <= set(lego.KINDS)


@pytest.mark.parametrize(("kind", "env", "message"), [
    ("godaddy2", {"X": "y"}, "unknown DNS provider"),
    ("cloudflare", {}, "needs CF_DNS_API_TOKEN or CF_API_EMAIL+CF_API_KEY"),
    ("cloudflare", {"CF_API_EMAIL": "a@b.c"}, "needs CF_DNS_API_TOKEN"),
    ("cloudflare", {"CF_DNS_API_TOKEN": "a\nEVIL=1"}, "newline"),
    ("cloudflare", {"CF_DNS_API_TOKEN": "a\x00b"}, "control character"),
    ("cloudflare", {"CF_DNS_API_TOKEN": "x", "PATH": "/tmp"}, "not a setting"),
    ("cloudflare", {"CF_DNS_API_TOKEN": "x", "LD_PRELOAD": "/tmp/x.so"}, "not a setting"),
    ("cloudflare", {"CF_DNS_API_TOKEN=X": "x"}, "not a variable name"),
    ("cloudflare", {"CF_DNS_API_TOKEN": ""}, "is empty"),
    ("exec", {"EXEC_PATH": "relative/hook.sh"}, "absolute path"),
    ("rfc2136", {"RFC2136_NAMESERVER": "ns:53", "RFC2136_TSIG_KEY": "k"}, "go together"),
])
def test_bad_credentials_are_refused_and_nothing_is_written(
        tmp_path: Path, kind: str, env: dict[str, str], message: str) -> None:
    store = providers.ProviderStore(tmp_path)
    with pytest.raises(Invalid, match=re.escape(message)):
        store.set(kind, env, None)
    assert not store.path.exists()


def test_equals_signs_in_values_are_kept(tmp_path: Path) -> None:
    store = providers.ProviderStore(tmp_path)
    store.set("rfc2136", {"RFC2136_NAMESERVER": "127.0.0.1:53", "RFC2136_TSIG_KEY": "k.",
                          "RFC2136_TSIG_SECRET": "c2VjcmV0==", "RFC2136_TSIG_ALGORITHM":
                          "hmac-sha256."}, "me@example.com")
    stored = store.get()
    assert stored is not None and stored.env["RFC2136_TSIG_SECRET"] == "c2VjcmV0=="
    assert store.path.stat().st_mode & 0o777 == 0o600
    shown = providers.read(stored).model_dump_json()
    assert "c2VjcmV0" not in shown and "RFC2136_TSIG_SECRET" in shown


def test_a_provider_this_lego_lacks_is_refused(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "lego"
    fake.write_bytes(b"\x7fELF... providers/dns/exec.NewDNSProvider ...")
    monkeypatch.setenv("STACKHUB_LEGO_BIN", str(fake))
    store = providers.ProviderStore(tmp_path)
    with pytest.raises(Invalid, match="built without the httpreq provider"):
        store.set("httpreq", {"HTTPREQ_ENDPOINT": "http://127.0.0.1:9/"}, None)
    assert not store.path.exists()
    # the providers lexicon drives run through lego's exec provider (tests/unit/proxy/
    # test_dnsrecords.py); httpreq has no record API, so it is not available here
    assert [k.kind for k in providers.kinds() if k.available and not k.via_exec] == ["exec"]
    assert not {"httpreq"} & {k.kind for k in providers.kinds() if k.available}


LOG = "2026/12/03 06:22:57 "


@pytest.mark.parametrize(("output", "error", "text"), [
    (f"{LOG}[INFO] [x] acme: Preparing to solve DNS-01\n{LOG}denied: bad token\n"
     f"{LOG}Could not obtain certificates:\n\terror: one or more domains had a problem:\n"
     "[*.b.test] [*.b.test] acme: error presenting token: exit status 3\n",
     DnsProviderRefused, "refused to create the challenge TXT record: exit status 3 "
     "(denied: bad token)"),
    (f"{LOG}Could not obtain certificates:\n[*.b.test] [*.b.test] acme: error presenting "
     "token: cloudflare: failed to find zone b.test.: zone could not be found\n",
     DnsProviderRefused, "failed to find zone"),
    (f"{LOG}[*.b.test] acme: Waiting for DNS record propagation.\n{LOG}Could not obtain "
     "certificates:\n[*.b.test] [*.b.test] propagation: time limit exceeded: last error: NS "
     "ns1.b.test. did not return the expected TXT record\n",
     DnsPropagationTimeout, "propagation timeout): NS ns1.b.test. did not return"),
    (f"{LOG}Could not obtain certificates:\n[*.b.test] [*.b.test] acme: error: 403 :: "
     "urn:ietf:params:acme:error:rateLimited :: too many certificates already issued\n",
     CaRefused, "(rateLimited): too many certificates already issued; wait"),
    (f"{LOG}Could not create client: get directory at 'https://127.0.0.1:1/dir': Get "
     "\"https://127.0.0.1:1/dir\": dial tcp 127.0.0.1:1: connect: connection refused\n",
     CaRefused, "could not be reached"),
    (f"{LOG}unrecognized DNS provider: alidns\n", DnsProviderRefused,
     "built without the alidns provider"),
    (f"{LOG}rfc2136: some credentials information are missing: RFC2136_NAMESERVER\n",
     DnsProviderRefused, "needs RFC2136_NAMESERVER"),
])
def test_lego_output_becomes_a_reason(output: str, error: type[Exception], text: str) -> None:
    err = lego.explain(output, "exec")
    assert type(err) is error
    assert text in err.message


def test_credentials_are_masked_in_output() -> None:
    output = lego.mask(f"curl: 401 for token {SECRET}\n", {"CF_DNS_API_TOKEN": SECRET,
                                                           "SHORT": "ab"})
    assert SECRET not in output and "***" in output


def test_renewal_is_due_under_30_days() -> None:
    assert not due(NOW + timedelta(days=31), NOW)
    assert due(NOW + timedelta(days=29, hours=23), NOW)
    assert due(NOW - timedelta(days=1), NOW)


def write_certificate(folder: Path, base: str, not_after: datetime) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(not_after - timedelta(days=90)).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(f"*.{base}"), x509.DNSName(base)]), critical=False)
            .sign(key, hashes.SHA256()))
    crt, pem_key = lego.files(folder, base)
    crt.parent.mkdir(parents=True, exist_ok=True)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem_key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))


@pytest.fixture
async def proxy(live: Services) -> AsyncIterator[ProxyService]:
    svc = live.proxy
    svc.gateway = FakeGateway(live.paths.root / "gateway")
    svc.settings = GatewaySettings(http_port=8080, https_port=8443, addresses=("203.0.113.7",))
    svc._resolver = FakeResolver()
    live.paths.server_info.write_text(json.dumps({"url": "http://127.0.0.1:8420"}))
    await svc.start()
    yield svc
    await svc.stop()


async def test_the_daily_check_renews_only_when_due(live: Services,
                                                    proxy: ProxyService) -> None:
    clock = [NOW]
    flows = WildcardFlows(proxy=proxy, runner=live.runner, settings=Dns01Settings(),
                          clock=lambda: clock[0])
    assert flows.renewal() is None  # no base
    proxy.records.set_setting(BASE_KEY, "box.example.com")
    proxy.records.set_setting(TLS_KEY, TlsMode.DNS01.value)
    write_certificate(proxy.lego_path, "box.example.com", NOW + timedelta(days=60))
    assert flows.renewal() is None
    clock[0] = NOW + timedelta(days=31)
    assert flows.renewal() == "box.example.com"
    clock[0] = NOW
    with pytest.raises(Conflict, match="not due for renewal before 2026-07-01"):
        flows.renew_now()
    proxy.records.set_setting(TLS_KEY, TlsMode.ACME.value)
    assert flows.renewal() is None  # not a DNS-01 base any more
    with pytest.raises(Conflict, match="has no DNS-01 wildcard"):
        flows.renew_now()


async def test_the_wildcard_is_loaded_inline_and_no_name_is_automated(
        live: Services, proxy: ProxyService) -> None:
    await live.apps.install(app_request(name="blog", values={"WEB_PORT": "18080"}))
    proxy.records.set_setting(BASE_KEY, "box.example.com")
    proxy.records.set_setting(TLS_KEY, TlsMode.DNS01.value)
    spec = proxy.spec()
    assert spec.certificates == ()  # not obtained yet: the internal CA, never a public CA
    assert "blog.box.example.com" in spec.internal and not spec.acme
    write_certificate(proxy.lego_path, "box.example.com", NOW + timedelta(days=60))
    await proxy.apply()
    assert isinstance(proxy.gateway, FakeGateway)
    config = proxy.gateway.configs[-1]
    tls = config["apps"]["tls"]
    pems = tls["certificates"]["load_pem"]
    assert len(pems) == 1 and "BEGIN CERTIFICATE" in pems[0]["certificate"]
    assert "PRIVATE KEY" in pems[0]["key"]
    assert tls["automation"]["policies"] == []
    assert "stackhub-app-blog" in routes(config)
    listed = {d.name: d for d in proxy.domains()}
    blog = listed["blog.box.example.com"]
    assert blog.tls == TlsMode.DNS01 and blog.issuer == "Test CA"
    wildcard = proxy.read_base().wildcard
    assert wildcard is not None and wildcard.renew_from is not None
    assert [r.text() for r in wildcard.records] == ["*.box.example.com. A 203.0.113.7",
                                                    "box.example.com. A 203.0.113.7"]


async def test_a_base_needs_a_provider_and_a_public_name(live: Services,
                                                       proxy: ProxyService) -> None:
    with pytest.raises(Invalid, match="no DNS provider is set"):
        await live.wildcard.obtain("box.example.com")
    with pytest.raises(Invalid, match="LAN name"):
        await live.wildcard.obtain("home.lan")
    assert proxy.base() == (None, None)


def test_render_without_certificates_has_no_load_pem() -> None:
    spec = caddy.GatewaySpec(admin="unix//x", http_port=80, https_port=443,
                             storage=Path("/x"))
    assert "certificates" not in caddy.render(spec)["apps"]["tls"]


def test_cli_env_pairs_keep_secrets_off_the_command_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from stackhub.cli.client import ClientError
    from stackhub.cli.domains import _pairs

    monkeypatch.setenv("CF_DNS_API_TOKEN", SECRET)
    assert _pairs(["CF_DNS_API_TOKEN", "CF_ZONE_API_TOKEN=a=b="]) == {
        "CF_DNS_API_TOKEN": SECRET, "CF_ZONE_API_TOKEN": "a=b="}
    with pytest.raises(ClientError, match="given twice"):
        _pairs(["A=1", "A=2"])
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ClientError, match="KEY=VALUE"):
        _pairs(["NOT_SET_ANYWHERE"])


async def test_the_wildcard_record_is_checked_with_the_fix(live: Services,
                                                          proxy: ProxyService) -> None:
    resolver = proxy.resolver
    assert isinstance(resolver, FakeResolver)
    probe = "stackhub-wildcard-check.box.example.com"
    missing = await proxy.check_wildcard("box.example.com")
    assert not missing.ok and missing.problem == "*.box.example.com has no DNS record"
    assert missing.fix == "create *.box.example.com. A 203.0.113.7 at the DNS provider"
    resolver.answers[probe] = Answer(addresses=("198.51.100.9",))
    stray = await proxy.check_wildcard("box.example.com")
    assert not stray.ok and "points at 198.51.100.9, not at this box" in str(stray.problem)
    resolver.answers[probe] = Answer(addresses=("203.0.113.7",))
    assert (await proxy.check_wildcard("box.example.com")).ok
    proxy.records.set_setting(BASE_KEY, "box.example.com")
    proxy.records.set_setting(TLS_KEY, TlsMode.DNS01.value)
    shown = proxy.read_base().wildcard
    assert shown is not None and shown.dns is not None and shown.dns.ok
