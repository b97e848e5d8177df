"""A wildcard for the base by DNS-01: real lego (exec provider), Pebble, challtestsrv, Caddy.

lego's exec provider runs a small script this module writes, which publishes the challenge
TXT record through challtestsrv's ``/set-txt`` (the DNS Pebble asks). The base is switched
only once the wildcard is there, and its names are served with it through Caddy, loaded
inline: Caddy obtains nothing by HTTP-01 for them. The script's own file name is full of shell
syntax and it logs the argv it gets: lego must run it as one program with three arguments,
and names with shell syntax are refused before lego runs (nothing may reach a shell).
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Server
from tests.integration.gateway_env import AcmeLab, gateway_server, running_lab

pytestmark = pytest.mark.integration
BASE = "box.test"
SECRET_HINT = "hook-secret-7f3a9c"
HOSTILE = "hook;touch pwned-1 $(touch pwned-2)`touch pwned-3`|touch pwned-4 'x\" && touch pwned-5"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeLab]:
    """Pebble and its DNS for this module (the gateway lab of gateway_env)."""
    yield from running_lab(tmp_path_factory)


@pytest.fixture(scope="module")
def hooks(lab: AcmeLab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """lego exec scripts: one publishing through challtestsrv, one refusing."""
    folder = tmp_path_factory.mktemp("hooks")
    # a file name a shell would split into several commands (each touching a pwned-* file)
    good = folder / (HOSTILE + ".py")
    good.write_text(
        f"#!{sys.executable}\n"
        "# lego exec provider: argv[1] present|cleanup, argv[2] the FQDN, argv[3] the value\n"
        "import json, sys, urllib.request\n"
        f"with open({str(folder / 'argv.jsonl')!r}, 'a') as log:\n"
        "    log.write(json.dumps(sys.argv) + '\\n')\n"
        "action, fqdn, value = sys.argv[1:]\n"
        "body = {'host': fqdn, 'value': value} if action == 'present' else {'host': fqdn}\n"
        f"url = 'http://127.0.0.1:{lab.mgmt_port}/' + "
        "('set-txt' if action == 'present' else 'clear-txt')\n"
        "urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(body).encode(),"
        " method='POST'), timeout=10)\n")
    bad = folder / f"refusing-hook-{SECRET_HINT}.sh"
    bad.write_text("#!/bin/sh\necho \"denied: the API token is not valid\" >&2\n"
                   "echo \"called as $0\" >&2\nexit 3\n")
    for path in (good, bad):
        path.chmod(0o755)
    return {"good": good, "bad": bad, "folder": folder}


def pwned(srv: Server, hooks: dict[str, Path]) -> list[Path]:
    """Files a shell would have made (in lego's working folder, the data root, the hooks')."""
    return [*srv.data_dir.rglob("pwned-*"), *hooks["folder"].rglob("pwned-*"),
            *Path.cwd().glob("pwned-*")]


@pytest.fixture(scope="module")
def srv(lab: AcmeLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the gateway on the lab's ports and one instance, web; no base yet."""
    # renewal is due 100 years before expiry: Pebble's certificates live years, not weeks
    env = {**lab.env(), "STACKHUB_DNS01_PROPAGATION_CHECK": "0",
           "STACKHUB_DNS01_RENEW_DAYS": "36500"}
    with gateway_server(tmp_path_factory.mktemp("dns01"), env) as server:
        yield server


def provider(srv: Server, script: Path) -> None:
    result = srv.cli("domain", "provider", "set", "exec", "--env", f"EXEC_PATH={script}",
                     "--env", "EXEC_SEQUENCE_INTERVAL=1", "--env", "EXEC_POLLING_INTERVAL=1",
                     "--env", "EXEC_PROPAGATION_TIMEOUT=30", "--json")
    assert result.returncode == 0, result.stderr + result.stdout
    shown = json.loads(result.stdout)
    assert shown["kind"] == "exec" and "EXEC_PATH" in shown["keys"]
    assert str(script) not in result.stdout  # keys only, never values


def fetch(lab: AcmeLab, host: str, path: str = "/") -> httpx.Response:
    """GET https://host/path through the gateway on 127.0.0.1, trusting only Pebble's roots."""
    context = ssl.create_default_context(cafile=str(lab.bundle))
    with httpx.Client(verify=context, timeout=30) as client:
        return client.get(f"https://127.0.0.1:{lab.https_port}{path}", headers={"Host": host},
                          extensions={"sni_hostname": host})


def served(lab: AcmeLab, host: str) -> dict[str, Any]:
    """Return the certificate the gateway serves for `host` (verified with Pebble's roots)."""
    context = ssl.create_default_context(cafile=str(lab.bundle))
    with socket.create_connection(("127.0.0.1", lab.https_port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        return dict(tls.getpeercert() or {})


def served_names(lab: AcmeLab, host: str) -> tuple[tuple[str, str], ...]:
    """Return the subjectAltName of the certificate the gateway serves for `host`."""
    return tuple(served(lab, host)["subjectAltName"])


def wildcard_ops(srv: Server) -> list[dict[str, Any]]:
    items = srv.api("GET", "/api/operations", params={"kind": "wildcard"}).json()["items"]
    return list(items)


def test_a_refusing_provider_fails_clearly_and_changes_nothing(srv: Server, lab: AcmeLab,
                                                               hooks: dict[str, Path]) -> None:
    provider(srv, hooks["bad"])
    result = srv.cli("domain", "base", BASE, "--tls", "dns01")
    assert result.returncode == 1
    assert "refused to create the challenge TXT record" in result.stderr
    assert "denied: the API token is not valid" in result.stderr
    assert "nothing was changed" in result.stderr
    op = wildcard_ops(srv)[0]
    assert op["state"] == "failed" and op["instance"] == "@gateway"
    journal = json.dumps(srv.api("GET", f"/api/operations/{op['id']}").json())
    assert SECRET_HINT not in journal  # EXEC_PATH's value is masked in lego's output
    assert "***" in journal
    base = srv.api("GET", "/api/domains/base").json()
    assert (base["base"], base["tls"]) == (None, None)
    assert srv.api("GET", "/api/domains").json() == []


@pytest.mark.parametrize("base", ["$(touch pwned-6).box.test", "x;touch pwned-7.box.test",
                                  "`touch pwned-8`.box.test", "-x.box.test",
                                  "a|b.box.test", "box.test --server=http://evil.test"])
def test_names_with_shell_syntax_are_refused_before_lego_runs(
        srv: Server, hooks: dict[str, Path], base: str) -> None:
    before = len(wildcard_ops(srv))
    result = srv.cli("domain", "base", "--tls", "dns01", "--", base)
    assert result.returncode != 0
    assert "is not a valid base domain" in result.stderr + result.stdout
    answer = srv.api("POST", "/api/gateway/wildcard", json={"base": base})
    assert answer.status_code == 422, answer.text
    assert len(wildcard_ops(srv)) == before  # no operation, no lego run
    assert srv.api("GET", "/api/domains/base").json()["base"] is None
    assert pwned(srv, hooks) == []


def test_a_base_without_a_provider_is_refused(srv: Server) -> None:
    renew = srv.cli("domain", "renew")
    assert renew.returncode == 1 and "has no DNS-01 wildcard" in renew.stderr
    srv.cli("domain", "provider", "remove")
    answer = srv.api("POST", "/api/gateway/wildcard", json={"base": BASE})
    assert answer.status_code == 422
    assert "no DNS provider is set" in answer.json()["error"]["message"]
    assert srv.api("GET", "/api/domains/base").json()["base"] is None


def test_wildcard_by_dns01_serves_apps_over_https(srv: Server, lab: AcmeLab,
                                                  hooks: dict[str, Path]) -> None:
    provider(srv, hooks["good"])
    result = srv.cli("domain", "base", BASE, "--tls", "dns01", "--json", timeout=300)
    assert result.returncode == 0, result.stderr + result.stdout
    out = json.loads(result.stdout)
    assert out["operation"]["state"] == "succeeded"
    wildcard = out["read"]["wildcard"]
    assert sorted(wildcard["names"]) == sorted([f"*.{BASE}", BASE])
    assert wildcard["issuer"].startswith("Pebble") and wildcard["expires_at"]
    assert {"type": "A", "name": f"*.{BASE}", "value": "127.0.0.1"} in wildcard["records"]
    steps = srv.api("GET", f"/api/operations/{out['operation']['id']}").json()["steps"]
    assert [s["name"] for s in steps] == ["challenge", "load", "serve", "records"]
    # the *.<base> record checked through the same DNS (challtestsrv answers 127.0.0.1)
    assert wildcard["dns"]["ok"] is True
    assert wildcard["dns"]["domain"] == f"stackhub-wildcard-check.{BASE}"

    deadline = time.monotonic() + 15  # the app's own start (a 502 page until it answers)
    while (answer := fetch(lab, f"web.{BASE}")).status_code == 502 and \
            time.monotonic() < deadline:
        time.sleep(0.5)
    assert (answer.status_code, answer.text.strip()) == (200, "hello from web"), answer.text
    assert fetch(lab, f"console.{BASE}", "/api/health").json()["status"] == "ok"
    listed = {d["name"]: d for d in srv.api("GET", "/api/domains").json()}
    web = listed[f"web.{BASE}"]
    assert (web["tls"], web["state"]) == ("dns01", "active")
    assert web["issuer"].startswith("Pebble") and web["expires_in_days"] > 30
    # no HTTP-01, no certificate managed by Caddy for the base's names: only the wildcard
    storage = srv.data_dir / "gateway"
    assert not list(storage.rglob(f"web.{BASE}.crt"))
    assert ("DNS", f"*.{BASE}") in served_names(lab, f"web.{BASE}")
    mode = (srv.data_dir / "secrets" / "dns-provider.json").stat().st_mode & 0o777
    assert mode == 0o600
    # lego ran the hook (a name full of shell syntax) as one program, three arguments each
    calls = [json.loads(line) for line in (hooks["folder"] / "argv.jsonl").read_text()
             .splitlines()]
    assert calls and all(c[0] == str(hooks["good"]) and len(c) == 4 for c in calls), calls
    assert {(c[1], c[2]) for c in calls} == {("present", f"_acme-challenge.{BASE}."),
                                           ("cleanup", f"_acme-challenge.{BASE}.")}
    assert pwned(srv, hooks) == []
    assert (srv.data_dir / "secrets" / "lego").stat().st_mode & 0o777 == 0o700


def test_renewal_runs_lego_renew_and_the_gateway_serves_the_new_certificate(
        srv: Server, lab: AcmeLab) -> None:
    before = served(lab, f"web.{BASE}")["serialNumber"]
    result = srv.cli("domain", "renew", "--json", timeout=300)
    assert result.returncode == 0, result.stderr + result.stdout
    op = json.loads(result.stdout)["operation"]
    assert op["state"] == "succeeded"
    after = served(lab, f"web.{BASE}")
    assert after["serialNumber"] != before  # loaded inline: Caddy serves the renewed one
    assert ("DNS", f"*.{BASE}") in after["subjectAltName"]
    assert fetch(lab, f"web.{BASE}").text.strip() == "hello from web"
    assert srv.api("GET", "/api/domains/base").json()["wildcard"]["error"] is None


def test_a_killed_renewal_is_interrupted_and_the_next_check_converges(
        srv: Server, lab: AcmeLab, tmp_path: Path) -> None:
    """The crash scenario of the `wildcard` kind (tests/integration/test_crash_kinds.py): the
    renewal check at start (due at once with this module's 36500 days) is killed at its
    challenge step; after the restart the op reads interrupted and the next check renews."""
    before = served(lab, f"web.{BASE}")["serialNumber"]
    marker = tmp_path / "paused"
    srv.stop()
    srv.start(STACKHUB_FAULT_PAUSE="wildcard-challenge", STACKHUB_FAULT_MARKER=str(marker))
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline, "the renewal never reached its challenge step"
        time.sleep(0.1)
    killed = wildcard_ops(srv)[0]
    assert killed["state"] == "running", killed
    srv.kill9()
    srv.start()
    found = {op["id"]: op for op in wildcard_ops(srv)}[killed["id"]]
    assert (found["state"], found["instance"]) == ("interrupted", "@gateway"), found
    assert "StackHub stopped" in found["error"]
    assert srv.api("GET", "/api/domains/base").json()["tls"] == "dns01"  # nothing undone
    deadline = time.monotonic() + 240
    while served(lab, f"web.{BASE}")["serialNumber"] == before:
        assert time.monotonic() < deadline, wildcard_ops(srv)[:2]
        time.sleep(1)
    while (newest := wildcard_ops(srv)[0])["state"] == "running":  # serve, records: after load
        assert time.monotonic() < deadline, newest
        time.sleep(0.5)
    assert newest["state"] == "succeeded" and newest["id"] != killed["id"], newest
    assert fetch(lab, f"web.{BASE}").text.strip() == "hello from web"
