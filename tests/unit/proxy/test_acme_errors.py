"""Caddy's HTTP-01 failures in plain words (the texts are Caddy 2.6.2's, against Pebble)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from stackhub.adapters.caddy import LOG_TAIL, CaddyGateway, CaddyProcess, read_log
from stackhub.proxy.acme_errors import explain
from stackhub.proxy.models import DomainError, DomainErrorDetail, DomainFailure

CA = "https://127.0.0.1:14000/dir"
REJECTED = ("could not get certificate from issuer: HTTP 400 urn:ietf:params:acme:error:"
            "rejectedIdentifier - Order included an identifier for which issuance is forbidden "
            'by policy: "blocked.example.test"')
CHALLENGE = ('challenge failed: Get "http://noport.example.test:49051/.well-known/acme-challenge/'
             'WbPH": dial tcp 127.0.0.1:49051: connect: connection refused')
AUTHZ = ("validating authorization: authorization failed: HTTP 400 urn:ietf:params:acme:error:"
         'connection - Get "http://noport.example.test:49051/.well-known/acme-challenge/WbPH": '
         "dial tcp 127.0.0.1:49051: connect: connection refused")
NO_SOLVERS = ("could not get certificate from issuer: [noport.example.test] solving challenges: "
              "noport.example.test: no solvers available for remaining challenges "
              "(configured=[http-01] offered=[tls-alpn-01 dns-01 http-01] remaining=[tls-alpn-01"
              " dns-01]) (order=https://127.0.0.1:14000/my-order/Nw) (ca=" + CA + ")")
NO_CA = ("could not get certificate from issuer: registering account [mailto:a@example.test] "
         'with server: provisioning client: performing request: Get "https://127.0.0.1:56883/'
         'dir": dial tcp 127.0.0.1:56883: connect: connection refused')


def _text(failure: DomainFailure | None) -> str:
    """Return the English sentence of a failure that must be there."""
    assert failure is not None
    return failure.text


def test_the_ca_refusing_the_name() -> None:
    failure = explain("blocked.example.test", [REJECTED], CA)
    said = _text(failure)
    assert said.startswith("the certificate authority refuses to issue a certificate for "
                           "blocked.example.test: its policy forbids this name (Order included")
    assert "use another name [Caddy: could not get certificate" in said
    assert failure is not None and failure.code == DomainError.REJECTED_IDENTIFIER
    assert failure.detail == DomainErrorDetail(
        detail='Order included an identifier for which issuance is forbidden by policy: '
        '"blocked.example.test"')


def test_port_80_unreachable_from_the_validation_or_its_first_line() -> None:
    for errors in ([CHALLENGE, AUTHZ, NO_SOLVERS], [CHALLENGE]):
        failure = explain("noport.example.test", errors, CA)
        said = _text(failure)
        assert failure is not None and failure.code == DomainError.PORT80_UNREACHABLE
        assert failure.detail == DomainErrorDetail(detail="127.0.0.1:49051: connection refused")
        assert said.startswith("the certificate authority could not connect to port 80 of this "
                               "box at noport.example.test (127.0.0.1:49051: connection "
                               "refused): open port 80 in the firewall"), said


def test_the_ca_unreachable() -> None:
    failure = explain("noca.example.test", [NO_CA], CA)
    assert failure == explain("noca.example.test", [NO_CA, "will retry: " + NO_CA], CA)
    assert _text(failure).startswith(f"the certificate authority {CA} cannot be reached from "
                                     "this box (127.0.0.1:56883: connection refused): check "
                                     "STACKHUB_ACME_CA")
    assert failure is not None and failure.code == DomainError.CA_UNREACHABLE
    assert failure.detail == DomainErrorDetail(ca=CA, detail="127.0.0.1:56883: connection "
                                               "refused")
    untrusted = NO_CA.replace("dial tcp 127.0.0.1:56883: connect: connection refused",
                              "tls: failed to verify certificate: x509: certificate signed by "
                              "unknown authority")
    failure = explain("noca.example.test", [untrusted], CA)
    assert "not trusted: set STACKHUB_ACME_CA_ROOT" in _text(failure)
    assert failure is not None and failure.code == DomainError.CA_UNTRUSTED
    assert failure.detail == DomainErrorDetail(ca=CA)
    unknown = NO_CA.replace("dial tcp 127.0.0.1:56883: connect: connection refused", "EOF")
    failure = explain("noca.example.test", [unknown], CA)
    assert _text(failure).startswith(f"the certificate authority {CA} cannot be reached from "
                                     "this box: check")
    assert failure is not None and failure.code == DomainError.CA_UNREACHABLE
    assert failure.detail == DomainErrorDetail(ca=CA)


def test_caa_rate_limit_dns_and_a_wrong_server() -> None:
    codes: list[tuple[DomainError, DomainErrorDetail | None]] = []

    def said(kind: str, detail: str) -> str:
        failure = explain("shop.example.test", [
            f"could not get certificate from issuer: HTTP 403 urn:ietf:params:acme:error:{kind}"
            f"{f' - {detail}' if detail else ''}"], CA)
        assert failure is not None
        codes.append((failure.code, failure.detail))
        return failure.text

    assert said("caa", "CAA record forbids issuance").startswith(
        "a CAA record of shop.example.test (or of a parent domain) forbids")
    assert "rate limit is reached for shop.example.test (too many failed authorizations" in \
        said("rateLimited", "too many failed authorizations recently")
    assert "could not look up shop.example.test (NXDOMAIN looking up A)" in \
        said("dns", "NXDOMAIN looking up A")
    assert "reached shop.example.test on port 80, but not this box's gateway" in \
        said("unauthorized", "The key authorization file from the server did not match")
    assert "refused the certificate for shop.example.test: badCSR (bad)" in said("badCSR", "bad")
    assert "refused the certificate for shop.example.test: badCSR [Caddy:" in said("badCSR", "")
    assert codes == [
        (DomainError.CAA, None),
        (DomainError.RATE_LIMITED,
         DomainErrorDetail(detail="too many failed authorizations recently")),
        (DomainError.CA_DNS, DomainErrorDetail(detail="NXDOMAIN looking up A")),
        (DomainError.PORT80_ELSEWHERE, None),
        (DomainError.CA_REFUSED, DomainErrorDetail(problem="badCSR", detail="bad")),
        (DomainError.CA_REFUSED, DomainErrorDetail(problem="badCSR"))]


def test_unrelated_errors_are_not_a_certificate_failure() -> None:
    assert explain("shop.example.test", [], CA) is None
    assert explain("shop.example.test", ["dial: upstream 127.0.0.1:1 refused"], CA) is None
    assert explain("shop.example.test", ["obtaining certificate: something new"], CA) == \
        DomainFailure("the certificate for shop.example.test could not be obtained: obtaining "
                      "certificate: something new", DomainError.NOT_OBTAINED,
                      DomainErrorDetail(detail="obtaining certificate: something new"))


def test_caddy_errors_are_read_from_a_moment_on_about_one_name(tmp_path: Path) -> None:
    process = CaddyProcess("/usr/bin/caddy", tmp_path, tmp_path / "admin.sock")
    process.lines.extend([
        {"level": "error", "ts": 100.0, "msg": "challenge failed", "identifier": "a.test",
         "error": "old"},
        {"level": "info", "ts": 200.0, "msg": "obtaining certificate", "identifier": "a.test"},
        {"level": "error", "ts": 200.5, "msg": "could not get certificate from issuer",
         "identifier": "a.test", "error": "new"},
        {"level": "error", "ts": 201.0, "msg": "could not get certificate from issuer",
         "identifier": "b.test", "error": "other name"},
        {"level": "error", "ts": 202.0, "msg": "could not get certificate from issuer",
         "identifier": "shopa.test", "error": "a name ending with it"},
        {"level": "error", "msg": "no time stamp", "identifier": "a.test"}])
    assert process.errors("a.test", since=150.0) == ["could not get certificate from issuer: new"]
    assert len(process.errors("a.test", since=0.0)) == 2
    gateway = CaddyGateway(tmp_path, binary="/usr/bin/caddy")
    assert gateway.log is None  # a child's output is read, never a file
    assert gateway.errors("a.test", since=0.0) == []  # no child started yet: nothing read


def test_a_system_caddys_errors_are_read_from_its_log_file(tmp_path: Path) -> None:
    """A system Caddy's output is not StackHub's: its config's log file is read instead."""
    gateway = CaddyGateway(tmp_path, external=tmp_path / "system.sock")
    assert gateway.log == tmp_path / "logs" / "caddy-errors.log"
    assert gateway.errors("a.test", since=0.0) == []  # nothing logged yet: no file
    assert gateway.last_error() is None
    gateway.log.parent.mkdir()
    entries = [{"level": "error", "ts": 100.0, "logger": "tls.obtain", "msg": "old",
                "identifier": "a.test", "error": "before"},
               {"level": "error", "ts": 200.0, "logger": "tls.obtain",
                "msg": "could not get certificate from issuer", "identifier": "a.test",
                "error": REJECTED},
               {"level": "error", "ts": 201.0, "logger": "tls.obtain", "msg": "other",
                "identifier": "b.test", "error": "other name"}]
    gateway.log.write_text("\n".join(json.dumps(e) for e in entries) + "\nnot json\n")
    assert gateway.errors("a.test", since=150.0) == [
        f"could not get certificate from issuer: {REJECTED}"]
    assert gateway.last_error("a.test") == f"could not get certificate from issuer: {REJECTED}"
    assert gateway.last_error() == "other: other name"
    reason = explain("a.test", gateway.errors("a.test", since=150.0), CA)
    assert "refuses to issue a certificate for a.test" in _text(reason)


def test_only_the_end_of_a_long_log_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "caddy-errors.log"
    line = json.dumps({"level": "error", "ts": 1.0, "msg": "x" * 1000, "identifier": "a.test"})
    path.write_text((line + "\n") * 600)  # 600 KB: more than the tail read
    entries = read_log(path)
    assert 0 < len(entries) <= LOG_TAIL // len(line)
    assert all(e["identifier"] == "a.test" for e in entries)  # no cut line parsed as garbage
    assert read_log(tmp_path / "missing.log") == []


async def test_a_panic_in_caddys_handlers_is_logged_as_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Go logs a handler's panic at info: the adapter still shows it (it once hid a /load
    panic that left the gateway on a stale config)."""
    process = CaddyProcess("/usr/bin/caddy", tmp_path, tmp_path / "admin.sock")
    lines = [json.dumps({"level": "info", "msg": "http: panic serving @: invalid "
                         "configuration: maxEvents = 0"}),
             json.dumps({"level": "info", "msg": "admin endpoint started"})]
    script = tmp_path / "out.sh"
    script.write_text("printf '%s\\n' " + " ".join(f"'{line}'" for line in lines) + "\n")
    proc = await asyncio.create_subprocess_exec("sh", str(script),
                                                stdout=asyncio.subprocess.PIPE)
    with caplog.at_level(logging.WARNING, logger="stackhub"):
        await process._read(proc)
    await proc.wait()
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == ["caddy: http: panic serving @: invalid configuration: maxEvents = 0 "]
    assert len(process.lines) == 2
