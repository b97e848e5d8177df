"""Domain names: normalised or refused with a reason; DNS answers judged with the fix."""

from __future__ import annotations

import pytest

from stackhub.adapters.dns import Answer
from stackhub.errors import Invalid
from stackhub.proxy.models import DnsProblem, TlsMode
from stackhub.proxy.names import caa_allows, judge, normalise, tls_for, under


@pytest.mark.parametrize(("given", "wanted"), [
    ("Cloud.Example.COM", "cloud.example.com"),
    ("cloud.example.com.", "cloud.example.com"),
    ("  shop.example.test ", "shop.example.test"),
    ("Bücher.example", "xn--bcher-kva.example"),
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("a-b.c0.io", "a-b.c0.io"),
])
def test_names_are_normalised(given: str, wanted: str) -> None:
    assert normalise(given) == wanted


@pytest.mark.parametrize(("given", "reason"), [
    ("", "empty"),
    ("1.2.3.4", "IP address"),
    ("[::1]", "IP address"),
    ("2001:db8::1", "IP address"),
    ("*.example.com", "wildcards"),
    ("a.*.example.com", "wildcards"),
    ("localhost", "two labels"),
    ("x" * 64 + ".com", "63"),
    (".".join(["abcdefghi"] * 26) + ".com", "253"),
    ("a..b", "not a valid"),
    ("-a.example.com", "not a valid"),
    ("a_b.example.com", "not a valid"),
    ("example.123", "number"),
])
def test_bad_names_are_refused_with_the_reason(given: str, reason: str) -> None:
    with pytest.raises(Invalid) as caught:
        normalise(given)
    assert reason in caught.value.message


def test_lan_suffixes_use_the_internal_ca() -> None:
    assert tls_for("home.lan", "auto") == TlsMode.INTERNAL
    assert tls_for("box.home.arpa", "auto") == TlsMode.INTERNAL
    assert tls_for("box.example.com", "auto") == TlsMode.ACME
    assert tls_for("box.example.com", "internal") == TlsMode.INTERNAL
    assert under("a.box.lan", "box.lan") and under("box.lan", "box.lan")
    assert not under("abox.lan", "box.lan")


BOX = ["203.0.113.7"]


def test_a_cname_to_the_automatic_name_is_accepted() -> None:
    answer = Answer(cnames=("web.box.example.com",), addresses=("198.51.100.1",))
    check = judge("shop.example.org", answer, automatic="web.box.example.com", box=BOX)
    assert check.ok and check.problem is None and check.problem_code is None
    assert check.record_name == "shop.example.org"


def test_an_a_record_to_this_box_is_accepted() -> None:
    check = judge("example.org", Answer(addresses=("203.0.113.7",)), automatic=None, box=BOX)
    assert check.ok


def test_a_wrong_a_record_names_the_records_to_create() -> None:
    check = judge("shop.example.org", Answer(addresses=("10.9.8.7",)),
                  automatic="web.box.example.com", box=BOX)
    assert not check.ok and check.problem_code == DnsProblem.POINTS_ELSEWHERE
    assert "10.9.8.7" in (check.problem or "")
    assert "shop.example.org. CNAME web.box.example.com." in (check.fix or "")
    assert "shop.example.org. A 203.0.113.7" in (check.fix or "")
    assert [r.type for r in check.expected] == ["CNAME", "A"]


def test_a_record_mixing_this_box_and_another_is_refused() -> None:
    check = judge("x.example.org", Answer(addresses=("203.0.113.7", "10.0.0.9")),
                  automatic=None, box=BOX)
    assert not check.ok and "10.0.0.9" in (check.problem or "")
    assert check.problem_code == DnsProblem.POINTS_ELSEWHERE


def test_no_record_and_a_cname_elsewhere_are_refused() -> None:
    none = judge("x.example.org", Answer(), automatic="web.box.example.com", box=BOX)
    assert not none.ok and "has no DNS record" in (none.problem or "")
    assert none.problem_code == DnsProblem.NO_RECORD and none.record_name == "x.example.org"
    elsewhere = judge("x.example.org", Answer(cnames=("other.host.net",),
                                              addresses=("10.1.1.1",)),
                      automatic="web.box.example.com", box=["2001:db8::7"])
    assert not elsewhere.ok and "other.host.net" in (elsewhere.problem or "")
    assert elsewhere.problem_code == DnsProblem.CNAME_ELSEWHERE
    assert elsewhere.cnames == ["other.host.net"] and elsewhere.addresses == ["10.1.1.1"]
    assert "x.example.org. AAAA 2001:db8::7" in (elsewhere.fix or "")


def test_a_failed_lookup_is_not_a_wrong_record() -> None:
    check = judge("x.example.org", Answer(error="the DNS lookup of x.example.org timed out"),
                  automatic=None, box=BOX)
    assert not check.ok and "timed out" in (check.problem or "")
    assert check.problem_code == DnsProblem.LOOKUP_FAILED
    assert check.lookup_error == "the DNS lookup of x.example.org timed out"


def test_caa_may_forbid_the_ca() -> None:
    assert caa_allows((), "letsencrypt.org")
    assert caa_allows(('0 issue "letsencrypt.org"',), "letsencrypt.org")
    assert not caa_allows(('0 issue "sectigo.com"',), "letsencrypt.org")
    assert caa_allows(('0 issuewild "sectigo.com"',), "letsencrypt.org")
    check = judge("x.example.org", Answer(addresses=("203.0.113.7",),
                                          caa=('0 issue "sectigo.com"',)),
                  automatic=None, box=BOX)
    assert not check.ok and "CAA" in (check.problem or "")
    assert check.problem_code == DnsProblem.CAA_FORBIDS and check.ca == "letsencrypt.org"
    assert 'x.example.org. CAA 0 issue "letsencrypt.org"' in (check.fix or "")
