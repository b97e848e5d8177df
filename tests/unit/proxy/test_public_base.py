"""A public base (tls acme): its ``*.<base>`` record is checked, and a wrong one is a warning
with the exact record to create, shown with the base (the base is set all the same)."""

from __future__ import annotations

from stackhub.adapters.dns import Answer
from stackhub.proxy.models import DnsProblem
from stackhub.proxy.service import WILDCARD_PROBE, ProxyService
from stackhub.services import Services
from tests.unit.proxy.test_service import FakeResolver, install, proxy  # noqa: F401

PROBE = f"{WILDCARD_PROBE}.box.example.com"


async def test_a_public_base_without_its_record_is_set_with_the_record_to_create(
        live: Services, proxy: ProxyService) -> None:  # noqa: F811
    await install(live, "web", 18391)
    resolver = proxy.resolver
    assert isinstance(resolver, FakeResolver)
    read = await proxy.set_base("box.example.com", "auto")
    assert (read.base, read.tls) == ("box.example.com", "acme")  # set: DNS may come later
    assert read.dns is not None and not read.dns.ok
    assert read.dns.problem == "*.box.example.com has no DNS record"
    assert read.dns.problem_code == DnsProblem.NO_RECORD
    assert read.dns.record_name == "*.box.example.com"
    assert read.dns.fix == "create *.box.example.com. A 203.0.113.7 at the DNS provider"
    assert [r.text() for r in read.dns.expected] == ["*.box.example.com. A 203.0.113.7"]
    assert proxy.read_base().dns == read.dns  # shown again on every read
    resolver.answers[PROBE] = Answer(addresses=("198.51.100.9",))
    stray = (await proxy.set_base("box.example.com", "acme")).dns
    assert stray is not None and not stray.ok
    assert stray.problem == ("*.box.example.com points at 198.51.100.9, not at this box "
                             "(203.0.113.7)")
    assert stray.problem_code == DnsProblem.POINTS_ELSEWHERE
    assert stray.addresses == ["198.51.100.9"] and stray.box_addresses == ["203.0.113.7"]
    resolver.answers[PROBE] = Answer(error="the DNS lookup timed out")
    failed = (await proxy.set_base("box.example.com", "acme")).dns
    assert failed is not None and not failed.ok
    assert failed.problem_code == DnsProblem.LOOKUP_FAILED
    assert failed.lookup_error == "the DNS lookup timed out"
    assert failed.problem == "the DNS lookup timed out; StackHub could not check *.box.example.com"
    resolver.answers[PROBE] = Answer(addresses=("203.0.113.7",))
    await proxy.recheck()  # the periodic re-check refreshes it
    fixed = proxy.read_base().dns
    assert fixed is not None and fixed.ok and fixed.problem is None and fixed.fix is None
    assert fixed.problem_code is None and fixed.lookup_error is None


async def test_lan_and_internal_bases_are_not_checked(live: Services,
                                                      proxy: ProxyService) -> None:  # noqa: F811
    resolver = proxy.resolver
    assert isinstance(resolver, FakeResolver)
    assert (await proxy.set_base("home.lan", "auto")).dns is None
    assert (await proxy.set_base("box.example.com", "internal")).dns is None
    read = await proxy.set_base("box.example.com", "acme")
    assert read.dns is not None and read.dns.domain == PROBE
    assert (await proxy.set_base("other.example.com", "internal")).dns is None  # not stale


def test_the_cli_shows_the_record_to_create(capsys: object) -> None:
    from stackhub.cli.domains import _print_base

    gateway = {"running": True, "mode": "child", "http_port": 80, "https_port": 443,
               "restarts": 0, "error": None}
    dns = {"ok": False, "problem": "*.box.example.com has no DNS record",
           "fix": "create *.box.example.com. A 203.0.113.7 at the DNS provider"}
    _print_base({"base": "box.example.com", "tls": "acme", "console": "console.box.example.com",
                 "gateway": gateway, "dns": dns})
    out = capsys.readouterr()  # type: ignore[attr-defined]
    assert "*.box.example.com has no DNS record: create *.box.example.com. A 203.0.113.7" \
        in " ".join((out.out + out.err).split())
