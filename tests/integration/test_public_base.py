"""A public base end to end (issue 11, item 1): HTTP-01 certificates from Pebble.

`stackhub domain base box.example.test` (tls auto, so acme: not a LAN name, not DNS-01) gives
the installed instance ``<instance>.<base>`` and the console ``console.<base>``, each with a
certificate Caddy obtains from Pebble by HTTP-01 on its high test ports. A client trusting
only Pebble's roots reads the app's page and the console through them. Setting the base
checks the ``*.<base>`` record: a record leading elsewhere is a warning naming the record to
create (the base is set all the same; DNS may come later).
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import Server
from tests.integration.gateway_env import AcmeLab, eventually, fetch, lab_server, running_lab

pytestmark = pytest.mark.integration
BASE = "box.example.test"
APP = "pubweb"  # unique: compose projects are named after instances
PROBE = f"stackhub-wildcard-check.{BASE}."  # the name `set_base` looks up for *.<base>


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeLab]:
    """Pebble and its DNS for this module."""
    yield from running_lab(tmp_path_factory)


@pytest.fixture(scope="module")
def srv(lab: AcmeLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the gateway on the lab's ports and one instance, no base yet."""
    yield from lab_server(lab, tmp_path_factory.mktemp("public-base"), APP)


def issuer(lab: AcmeLab, host: str) -> str:
    """Return the organisation or common name of the issuer of the certificate `host` gets."""
    context = ssl.create_default_context(cafile=str(lab.bundle))
    with socket.create_connection(("127.0.0.1", lab.https_port), timeout=30) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        cert = tls.getpeercert()
    assert cert is not None
    fields = dict(pair for rdn in cert["issuer"] for pair in rdn)
    return str(fields.get("commonName") or fields.get("organizationName"))


def base(srv: Server, name: str) -> tuple[str, dict[str, Any]]:
    """Set the base by the CLI; return its text output and the base as the API reads it."""
    result = srv.cli("domain", "base", name)
    assert result.returncode == 0, result.stderr + result.stdout
    read = srv.api("GET", "/api/domains/base")
    assert read.status_code == 200, read.text
    return " ".join((result.stdout + result.stderr).split()), read.json()


def test_a_wildcard_record_elsewhere_is_a_warning_with_the_record_to_create(
        srv: Server, lab: AcmeLab) -> None:
    lab.dns("add-a", host=PROBE, addresses=["192.0.2.7"])
    try:
        text, read = base(srv, BASE)
    finally:
        lab.dns("clear-a", host=PROBE)
    assert (read["base"], read["tls"]) == (BASE, "acme")  # set, DNS may come later
    dns = read["dns"]
    assert not dns["ok"]
    assert dns["problem"] == f"*.{BASE} points at 192.0.2.7, not at this box (127.0.0.1)"
    assert dns["fix"] == f"create *.{BASE}. A 127.0.0.1 at the DNS provider"
    assert f"Warning: *.{BASE} points at 192.0.2.7" in text
    assert f"create *.{BASE}. A 127.0.0.1 at the DNS provider" in text


def test_the_app_and_the_console_get_pebble_certificates_by_http01(
        srv: Server, lab: AcmeLab) -> None:
    text, read = base(srv, BASE)  # the record now leads here (the mock DNS's default)
    assert read["dns"]["ok"] and f"*.{BASE} reaches this box" in text
    host, console = f"{APP}.{BASE}", f"console.{BASE}"
    # on demand: the first handshake obtains the certificate (HTTP-01 on Caddy's port)
    page = eventually(lambda: fetch(lab, host, lab.bundle).raise_for_status(), timeout=90)
    assert page.text.strip() == f"hello from {APP}"
    health = eventually(lambda: fetch(lab, console, lab.bundle, "/api/health")
                        .raise_for_status(), timeout=90)
    assert health.json()["status"] == "ok"
    assert issuer(lab, host).startswith("Pebble")
    assert issuer(lab, console).startswith("Pebble")
    listed = srv.cli("domain", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    automatic = {d["name"]: d for d in json.loads(listed.stdout)}[host]
    assert (automatic["kind"], automatic["tls"], automatic["state"]) == \
        ("automatic", "acme", "active")
    assert automatic["issuer"].startswith("Pebble") and automatic["expires_at"]
