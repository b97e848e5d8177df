"""DNS records written by StackHub through dns-lexicon into a real BIND (RFC 2136 with TSIG).

Debian's ``named`` serves the zone ``box.test`` on 127.0.0.1:53 (lexicon's ddns provider
talks to port 53 only) and takes signed updates. Records are read back with dnspython: the
adapter's writes, the lego exec hook's TXT challenge, and a server keeping ``*.<base>`` on
the public address it learns from a local page, rewritten when that address changes.
Run under ``flock /tmp/stackhub-gateway.lock`` (fixed port 53, the gateway lab's ports).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import dns.resolver
import pytest

from stackhub.adapters import dnsrecords
from stackhub.errors import DnsProviderRefused, Invalid
from stackhub.proxy import dnshook
from tests.integration.conftest import Server
from tests.integration.gateway_env import (
    AcmeLab,
    fetch,
    gateway_server,
    running_lab,
    serving_address,
)

pytestmark = pytest.mark.integration
ZONE = "box.test"
KEY = "stackhub-h6"
READONLY = "stackhub-h6-ro"  # a key named knows but grants no update


class Named:
    """BIND's named on 127.0.0.1:53 with one zone open to TSIG-signed updates."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.ro_secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Write the config and zone, start named in the foreground, wait for it."""
        f = self.folder
        (f / "zone.db").write_text(
            f"$TTL 300\n@ IN SOA ns.{ZONE}. admin.{ZONE}. ( 1 3600 600 86400 60 )\n"
            f"@ IN NS ns.{ZONE}.\nns IN A 127.0.0.1\n")
        (f / "named.conf").write_text(
            f'key "{KEY}" {{ algorithm hmac-sha256; secret "{self.secret}"; }};\n'
            f'key "{READONLY}" {{ algorithm hmac-sha256; secret "{self.ro_secret}"; }};\n'
            f'options {{ directory "{f}"; listen-on port 53 {{ 127.0.0.1; }}; '
            f'listen-on-v6 {{ none; }}; recursion no; pid-file "{f}/named.pid"; '
            'dnssec-validation no; };\ncontrols { };\n'
            f'zone "{ZONE}" {{ type primary; file "{f}/zone.db"; '
            f'update-policy {{ grant {KEY} zonesub ANY; }}; }};\n')
        log = (f / "named.log").open("ab")
        self.proc = subprocess.Popen(["named", "-g", "-c", str(f / "named.conf")],
                                     stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.lookup(f"ns.{ZONE}", "A")
                return
            except dns.exception.DNSException:
                time.sleep(0.2)
        raise AssertionError(f"named did not start: {(f / 'named.log').read_text()[-2000:]}")

    def stop(self) -> None:
        """Stop named."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def env(self, secret: str | None = None, key: str = KEY) -> dict[str, str]:
        """The rfc2136 provider's credentials (lego's variable names)."""
        return {"RFC2136_NAMESERVER": "127.0.0.1", "RFC2136_TSIG_KEY": key,
                "RFC2136_TSIG_SECRET": secret or self.secret,
                "RFC2136_TSIG_ALGORITHM": "hmac-sha256."}

    @staticmethod
    def lookup(name: str, rtype: str) -> list[str]:
        """Ask named directly (authoritative, no cache); [] when the name has no such record."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.lifetime = 3
        try:
            return sorted(r.to_text() for r in resolver.resolve(name, rtype))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []


def _port_53_free() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", 53)) != 0


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Named]:
    """A running named for this module (fails when it cannot run here)."""
    if shutil.which("named") is None:
        pytest.fail("named is missing (scripts/test installs bind9: scripts/bootstrap bind9)")
    if not _port_53_free():
        pytest.fail("127.0.0.1:53 is taken: these tests need it for named")
    server = Named(tmp_path_factory.mktemp("named"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_records_are_created_replaced_and_deleted(named: Named) -> None:
    zone = dnsrecords.Zone("rfc2136", named.env(), ZONE)
    asyncio.run(dnsrecords.replace(zone, f"*.{ZONE}", "A", ("203.0.113.5",)))
    assert named.lookup(f"web.{ZONE}", "A") == ["203.0.113.5"]
    asyncio.run(dnsrecords.replace(zone, f"*.{ZONE}", "A", ("203.0.113.6",)))
    assert named.lookup(f"shop.{ZONE}", "A") == ["203.0.113.6"]  # replaced, not added
    asyncio.run(dnsrecords.replace(zone, f"cloud.{ZONE}", "CNAME", (f"web.{ZONE}",)))
    assert named.lookup(f"cloud.{ZONE}", "CNAME") == [f"web.{ZONE}."]
    asyncio.run(dnsrecords.delete(zone, f"cloud.{ZONE}", "CNAME"))
    assert named.lookup(f"cloud.{ZONE}", "CNAME") == []


def test_bad_credentials_and_names_are_refused_and_change_nothing(named: Named) -> None:
    wrong = dnsrecords.Zone("rfc2136", named.env(base64.b64encode(b"x" * 32).decode()), ZONE)
    with pytest.raises(DnsProviderRefused, match=r"refused setting TXT bad\.box\.test") as caught:
        asyncio.run(dnsrecords.replace(wrong, f"bad.{ZONE}", "TXT", ("bad-value",)))
    assert base64.b64encode(b"x" * 32).decode() not in caught.value.message
    assert named.lookup(f"bad.{ZONE}", "TXT") == []
    zone = dnsrecords.Zone("rfc2136", named.env(), ZONE)
    with pytest.raises(Invalid, match=r"not in the zone box\.test"):
        asyncio.run(dnsrecords.replace(zone, "web.example.org", "TXT", ("bad-value",)))
    with pytest.raises(Invalid, match="port 53"):
        asyncio.run(dnsrecords.replace(dnsrecords.Zone(
            "rfc2136", {**named.env(), "RFC2136_NAMESERVER": "127.0.0.1:5353"}, ZONE),
            f"bad.{ZONE}", "TXT", ("bad-value",)))
    with pytest.raises(Invalid, match="record type MX is not managed"):
        asyncio.run(dnsrecords.replace(zone, f"bad.{ZONE}", "MX", ("10 mail.box.test.",)))
    assert named.lookup(f"bad.{ZONE}", "TXT") == []


def test_updates_the_name_server_refuses_fail_with_its_answer(named: Named) -> None:
    """A signed update answered REFUSED or NOTAUTH is an error, not a silent success."""
    denied = dnsrecords.Zone("rfc2136", named.env(named.ro_secret, key=READONLY), ZONE)
    with pytest.raises(DnsProviderRefused, match=r"refused setting TXT denied\.box\.test: .*"
                       r"answered the update of zone box\.test with REFUSED") as caught:
        asyncio.run(dnsrecords.replace(denied, f"denied.{ZONE}", "TXT", ("denied-value",)))
    assert "update-policy" in caught.value.message
    assert named.ro_secret not in caught.value.message
    with pytest.raises(DnsProviderRefused, match="with REFUSED"):
        asyncio.run(dnsrecords.add(denied, f"_acme-challenge.{ZONE}", "TXT", "v"))
    with pytest.raises(DnsProviderRefused, match="with REFUSED"):
        asyncio.run(dnsrecords.delete(denied, f"ns.{ZONE}", "A"))
    assert named.lookup(f"denied.{ZONE}", "TXT") == []  # (the wildcard answers A queries)
    assert named.lookup(f"ns.{ZONE}", "A") == ["127.0.0.1"]  # nothing deleted
    elsewhere = dnsrecords.Zone("rfc2136", named.env(), "other.test")  # not served there
    with pytest.raises(DnsProviderRefused, match=r"zone other\.test with NOTAUTH"):
        asyncio.run(dnsrecords.replace(elsewhere, "www.other.test", "A", ("203.0.113.9",)))
    zone = dnsrecords.Zone("rfc2136", named.env(), ZONE)  # the granted key still works
    asyncio.run(dnsrecords.replace(zone, f"granted.{ZONE}", "TXT", ("granted-value",)))
    assert named.lookup(f"granted.{ZONE}", "TXT") == ['"granted-value"']
    asyncio.run(dnsrecords.delete(zone, f"granted.{ZONE}", "TXT"))
    assert named.lookup(f"granted.{ZONE}", "TXT") == []


def test_the_lego_exec_hook_presents_and_cleans_up_the_challenge(named: Named,
                                                                tmp_path: Path) -> None:
    hook = dnshook.script(tmp_path / "lego")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **named.env(),
           **dnshook.settings("rfc2136", ZONE, hook)}
    fqdn = f"_acme-challenge.{ZONE}."
    present = subprocess.run([str(hook), "present", fqdn, "challenge-value-1"], env=env,
                             capture_output=True, text=True, timeout=60, check=False)
    assert present.returncode == 0, present.stdout + present.stderr
    assert named.lookup(fqdn, "TXT") == ['"challenge-value-1"']
    cleanup = subprocess.run([str(hook), "cleanup", fqdn, "challenge-value-1"], env=env,
                             capture_output=True, text=True, timeout=60, check=False)
    assert cleanup.returncode == 0, cleanup.stdout + cleanup.stderr
    assert named.lookup(fqdn, "TXT") == []
    refused = subprocess.run([str(hook), "present", fqdn, "v"], env={
        **env, "RFC2136_TSIG_SECRET": base64.b64encode(b"y" * 32).decode()},
        capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 1 and "refused adding TXT" in refused.stdout
    assert base64.b64encode(b"y" * 32).decode() not in refused.stdout + refused.stderr


@pytest.fixture(scope="module")
def address_page() -> Iterator[ThreadingHTTPServer]:
    """A local page answering with the box's 'public' address."""
    yield from serving_address("203.0.113.10")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeLab]:
    """Pebble and its DNS (the gateway lab of gateway_env)."""
    yield from running_lab(tmp_path_factory)


def set_provider(server: Server, named: Named, secret: str | None = None, key: str = KEY
                 ) -> subprocess.CompletedProcess[str]:
    """Run `domain provider set rfc2136` with named's credentials (the key `key`), the TSIG
    secret passed through the environment (`--env NAME` alone)."""
    env = named.env(secret, key)
    return server.cli("domain", "provider", "set", "rfc2136", "--zone", ZONE,
                      *(f for k, v in env.items()
                        for f in ("--env", k if k == "RFC2136_TSIG_SECRET" else f"{k}={v}")),
                      "--json", RFC2136_TSIG_SECRET=env["RFC2136_TSIG_SECRET"])


def _wait_for(named: Named, name: str, rtype: str, wanted: list[str],
              timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while named.lookup(name, rtype) != wanted:
        assert time.monotonic() < deadline, f"{name} {rtype}: {named.lookup(name, rtype)}"
        time.sleep(0.3)


def test_the_server_keeps_the_base_records_on_the_public_address(
        named: Named, lab: AcmeLab, address_page: ThreadingHTTPServer,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    env = {**lab.env(), "STACKHUB_PUBLIC_IP_URL":
           f"http://127.0.0.1:{address_page.server_address[1]}/",
           "STACKHUB_PUBLIC_IP_EVERY": "1"}
    with gateway_server(tmp_path_factory.mktemp("records"), env, install=None) as server:
        shown = server.cli("domain", "records", "--json")
        assert shown.returncode == 0, shown.stderr + shown.stdout
        assert json.loads(shown.stdout)["managed"] is False
        refused = server.cli("domain", "records", "--sync", "--json")
        assert refused.returncode != 0 and "no DNS provider" in refused.stdout
        bad = server.cli("domain", "provider", "set", "rfc2136", "--env",
                         "RFC2136_NAMESERVER=127.0.0.1", "--zone", "not a zone!", "--json")
        assert bad.returncode != 0
        assert json.loads(server.cli("domain", "provider", "show", "--json").stdout)[
            "kind"] is None
        result = set_provider(server, named)
        assert result.returncode == 0, result.stderr + result.stdout
        assert named.secret not in result.stdout
        provider = json.loads(result.stdout)
        assert provider["zone"] == ZONE and provider["records"] is True
        base = server.cli("domain", "base", ZONE, "--tls", "internal", "--json")
        assert base.returncode == 0, base.stderr + base.stdout
        _wait_for(named, f"web.{ZONE}", "A", ["203.0.113.10"])
        _wait_for(named, ZONE, "A", ["203.0.113.10"])
        address_page.address = "203.0.113.11"  # type: ignore[attr-defined]
        _wait_for(named, f"anything.{ZONE}", "A", ["203.0.113.11"])
        synced = server.cli("domain", "records", "--sync", "--json")
        assert synced.returncode == 0, synced.stderr + synced.stdout
        read = json.loads(synced.stdout)
        assert read["public_ip"] == "203.0.113.11" and read["error"] is None
        assert {(r["name"], r["type"], r["content"], r["published"])
                for r in read["records"]} == {(ZONE, "A", "203.0.113.11", True),
                                              (f"*.{ZONE}", "A", "203.0.113.11", True)}
        # restarted, the server still knows the records it wrote: a new base replaces the
        # old base's records, which are deleted at the name server, not forgotten
        server.kill9()
        server.start()
        shown = json.loads(server.cli("domain", "records", "--json").stdout)
        rebased = server.cli("domain", "base", f"home.{ZONE}", "--tls", "internal", "--json")
        assert rebased.returncode == 0, rebased.stderr + rebased.stdout
        _wait_for(named, f"web.home.{ZONE}", "A", ["203.0.113.11"])
        _wait_for(named, f"home.{ZONE}", "A", ["203.0.113.11"])
        _wait_for(named, ZONE, "A", [])
        _wait_for(named, f"anything.{ZONE}", "A", [])
        read = json.loads(server.cli("domain", "records", "--json").stdout)
        assert {(r["name"], r["published"]) for r in read["records"]} == {
            (f"home.{ZONE}", True), (f"*.home.{ZONE}", True)}
        assert shown["managed"] is True


def test_a_custom_domain_in_the_managed_zone_gets_its_record_from_domain_add(
        named: Named, lab: AcmeLab, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`domain add` creates the CNAME in BIND, waits until it resolves, then gets the certificate.

    StackHub looks names up at named itself (STACKHUB_DNS_RESOLVER), so the record has to
    exist there; Pebble reaches the box through challtestsrv, as in the other gateway tests.
    """
    shop, home = f"shop.{ZONE}", f"home.{ZONE}"
    assert named.lookup(shop, "CNAME") == []
    env = {**lab.env(), "STACKHUB_DNS_RESOLVER": "127.0.0.1:53",
           "STACKHUB_PUBLIC_IP": "203.0.113.12", "STACKHUB_PUBLIC_IP_EVERY": "3600"}
    with gateway_server(tmp_path_factory.mktemp("managed-domain"), env) as server:
        base = server.cli("domain", "base", home, "--tls", "internal", "--json")
        assert base.returncode == 0, base.stderr + base.stdout
        # no provider yet: the zone is the user's, the add is refused with the exact record
        refused = server.cli("domain", "add", "web", shop)
        assert refused.returncode != 0
        assert f"{shop} has no DNS record: create {shop}. CNAME web.{home}." in refused.stdout \
            + refused.stderr
        assert named.lookup(shop, "CNAME") == []
        assert shop not in {d["name"] for d in json.loads(
            server.cli("domain", "list", "--json").stdout)}
        result = set_provider(server, named)
        assert result.returncode == 0, result.stderr + result.stdout
        added = server.cli("domain", "add", "web", shop)
        assert added.returncode == 0, added.stderr + added.stdout
        assert named.lookup(shop, "CNAME") == [f"web.{home}."]
        answer = fetch(lab, shop, lab.bundle)
        assert answer.status_code == 200 and answer.text.strip() == "hello from web"
        listed = {d["name"]: d for d in json.loads(
            server.cli("domain", "list", "web", "--json").stdout)}
        assert listed[shop]["state"] == "active"
        removed = server.cli("domain", "remove", "web", shop)
        assert removed.returncode == 0, removed.stderr + removed.stdout
        assert named.lookup(shop, "CNAME") == []
        # a refused write (a key the name server knows but never lets update) adds nothing
        wrong = set_provider(server, named, named.ro_secret, READONLY)
        assert wrong.returncode == 0, wrong.stderr + wrong.stdout
        failed = server.cli("domain", "add", "web", shop)
        assert failed.returncode != 0
        assert f"could not create the DNS record of {shop}" in failed.stdout + failed.stderr
        assert named.lookup(shop, "CNAME") == []
        assert shop not in {d["name"] for d in json.loads(
            server.cli("domain", "list", "--json").stdout)}
