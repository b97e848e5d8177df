"""HTTP-01 failures end with a non-zero `domain add`, a reason in plain words, nothing bound.

Real Caddy, Pebble and pebble-challtestsrv (issue 11's bad input): the CA refusing the name
(Pebble's block list: rejectedIdentifier), CAA forbidding the CA (StackHub's own check, as
Pebble never checks CAA), port 80 unreachable (Pebble validates on a port Caddy does not
listen on, as behind a NAT without a forward) and the CA unreachable (a closed port). One lab
and one server for the module; the server restarts with another environment where needed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import Server, free_port
from tests.integration.gateway_env import AcmeLab, eventually, lab_server, running_lab

pytestmark = pytest.mark.integration
APP = "failweb"  # unique: compose projects are named after instances
BLOCKED = "blocked.example.test"
CA_IDENTITY = "pebble.test"  # the CA's CAA identity (STACKHUB_ACME_CAA)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeLab]:
    """Pebble (refusing BLOCKED) and its DNS for this module."""
    yield from running_lab(tmp_path_factory, blocklist=(BLOCKED,))


@pytest.fixture(scope="module")
def srv(lab: AcmeLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server on the lab with one instance and no base (custom domains only)."""
    yield from lab_server(lab, tmp_path_factory.mktemp("acme-failures"), APP,
                          STACKHUB_ACME_CAA=CA_IDENTITY)


def restart(srv: Server, **env: str) -> None:
    """Restart the server (and its Caddy) with `env` over the lab's environment."""
    srv.stop()
    srv.extra_env.update(env)
    srv.start()


def loaded_hosts(srv: Server) -> str:
    """Return Caddy's loaded config as text, read from its admin socket."""
    transport = httpx.HTTPTransport(uds=str(srv.data_dir / "gateway" / "admin.sock"))
    with httpx.Client(transport=transport, timeout=10) as client:
        answer = client.get("http://caddy/config/", headers={"Host": ""})
    assert answer.status_code == 200, answer.text
    return answer.text


def refused(srv: Server, domain: str) -> str:
    """Run `domain add`, which must fail, leaving nothing routed; return its reason."""
    started = time.monotonic()
    result = srv.cli("domain", "add", APP, domain)
    took = time.monotonic() - started
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, text
    assert took < 40, f"{took:.0f} s: the failure should end the wait ({text})"

    def unrouted() -> None:  # the undo re-renders (debounced): no route, no certificate asked
        assert domain not in loaded_hosts(srv)

    eventually(unrouted, timeout=15)
    listed = srv.cli("domain", "list", APP, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [d for d in json.loads(listed.stdout) if d["name"] == domain]
    for row in rows:  # listed as failed with the same reason, and not served
        assert row["state"] == "failed" and " ".join(row["error"].split()) in text, row
    return text


def test_the_ca_refusing_the_name(srv: Server, lab: AcmeLab) -> None:
    lab.dns("add-a", host=f"{BLOCKED}.", addresses=["127.0.0.1"])
    text = refused(srv, BLOCKED)
    assert (f"the certificate authority refuses to issue a certificate for {BLOCKED}: its "
            "policy forbids this name") in text
    assert "use another name" in text


def test_caa_forbidding_the_ca(srv: Server, lab: AcmeLab) -> None:
    name = "caa.example.test"  # Pebble never checks CAA: StackHub refuses before binding
    lab.dns("add-a", host=f"{name}.", addresses=["127.0.0.1"])
    lab.dns("add-caa", host=f"{name}.", policies=[{"tag": "issue", "value": "ca.invalid"}])
    text = refused(srv, name)
    assert f"a CAA record of {name} forbids the certificate authority" in text
    assert f'{name}. CAA 0 issue "{CA_IDENTITY}"' in text
    assert not [d for d in srv.api("GET", "/api/domains").json() if d["name"] == name]


def test_port_80_unreachable(srv: Server, lab: AcmeLab) -> None:
    """Caddy's HTTP port is not the one Pebble validates on: nothing answers there."""
    restart(srv, STACKHUB_HTTP_PORT=str(free_port()))
    try:
        name = "noport.example.test"
        lab.dns("add-a", host=f"{name}.", addresses=["127.0.0.1"])
        text = refused(srv, name)
        assert (f"the certificate authority could not connect to port 80 of this box at "
                f"{name} (127.0.0.1:{lab.http_port}: connection refused): open port 80") in text
    finally:
        restart(srv, STACKHUB_HTTP_PORT=str(lab.http_port))


def test_the_ca_unreachable(srv: Server, lab: AcmeLab) -> None:
    closed = free_port()
    restart(srv, STACKHUB_ACME_CA=f"https://127.0.0.1:{closed}/dir")
    try:
        name = "noca.example.test"
        lab.dns("add-a", host=f"{name}.", addresses=["127.0.0.1"])
        text = refused(srv, name)
        assert (f"the certificate authority https://127.0.0.1:{closed}/dir cannot be reached "
                f"from this box (127.0.0.1:{closed}: connection refused): check "
                "STACKHUB_ACME_CA") in text
    finally:
        restart(srv, STACKHUB_ACME_CA=lab.env()["STACKHUB_ACME_CA"])
