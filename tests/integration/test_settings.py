"""Settings after install with a real server and engine: preview, apply recreating only the
services whose configuration changed, invalid values refused before anything stops,
init-only parameters read-only, revisions and going back to one."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.integration.conftest import FIXTURE_APPS, Server, docker, http_text

pytestmark = pytest.mark.integration

MANIFEST = """\
format: stackhub/v1
id: keyed
name: Keyed
version: "1.0.0"
title: {en: Keyed}
main: {service: web, port: 80, path: /}
parameters:
  - {name: WEB_PORT, type: port, default: 18160}
  - {name: DB_PASSWORD, type: secret, length: 16, init_only: true}
  - {name: GREETING, type: string, default: hello}
  - {name: NOTE, type: string, default: "", help: {en: not used by any service}}
"""
COMPOSE = """\
services:
  web:
    image: stackhub-test/web:1
    ports: ["${WEB_PORT}:80"]
    environment:
      DB_PASSWORD: ${DB_PASSWORD}
      GREETING: ${GREETING}
    stop_grace_period: 1s
  side:
    image: stackhub-test/web:1
    stop_grace_period: 1s
"""


def _install(srv: Server, name: str, source: dict[str, str]) -> None:
    answer = srv.api("POST", "/api/instances", json={"source": source, "name": name})
    assert answer.status_code == 202, answer.text
    assert srv.wait_operation(answer.json()["operation"]["id"])["state"] == "succeeded"


def _ids(name: str) -> dict[str, str]:
    out = docker("ps", "-a", "--filter", f"label=io.stackhub.instance={name}", "--format",
                 '{{.ID}} {{.Label "com.docker.compose.service"}}').stdout
    return {line.split()[1]: line.split()[0] for line in out.splitlines() if line.strip()}


def _env(container: str) -> dict[str, str]:
    raw = json.loads(docker("inspect", "--format", "{{json .Config.Env}}", container).stdout)
    return dict(item.partition("=")[::2] for item in raw)


@pytest.fixture(scope="module")
def srv(module_server: Server) -> Iterator[Server]:
    """The module's shared server: each test installs under a name of its own."""
    yield module_server


def test_settings_change_recreates_only_the_changed_service(srv: Server) -> None:
    name = "t-set-keyed"
    _install(srv, name, {"kind": "app", "manifest": MANIFEST, "compose": COMPOSE})
    before = _ids(name)
    assert set(before) == {"web", "side"}
    secret = _env(before["web"])["DB_PASSWORD"]
    assert len(secret) == 16

    shown = srv.cli("app", "settings", name, "--json")
    assert shown.returncode == 0, shown.stderr
    params = {p["name"]: p for p in json.loads(shown.stdout)["parameters"]}
    assert params["DB_PASSWORD"]["value"] == "********"
    assert params["DB_PASSWORD"]["editable"] is False
    assert "initialised" in params["DB_PASSWORD"]["reason"]
    assert params["GREETING"] == {**params["GREETING"], "value": "hello", "editable": True}

    # an invalid value and an init-only parameter are refused before anything stops
    bad = srv.cli("app", "set", name, "--set", "WEB_PORT=99999", "--yes")
    assert bad.returncode != 0 and "WEB_PORT" in bad.stdout + bad.stderr
    locked = srv.cli("app", "set", name, "--set", "DB_PASSWORD=other", "--yes")
    assert locked.returncode != 0 and "read-only after install" in locked.stdout + locked.stderr
    assert _ids(name) == before
    ops = srv.api("GET", "/api/operations", params={"instance": name}).json()["items"]
    assert [o["kind"] for o in ops] == ["install"]

    # a value no service uses: nothing is recreated
    note = srv.cli("app", "set", name, "--set", "NOTE=just a note", "--yes", "--json")
    assert note.returncode == 0, note.stderr + note.stdout
    assert json.loads(note.stdout)["preview"]["recreate"] == []
    assert _ids(name) == before

    # a value of one service: only that one is recreated, after a preview with the diff
    preview = srv.api("POST", f"/api/instances/{name}/settings/preview",
                      json={"values": {"GREETING": "bonjour"}}).json()
    assert preview["recreate"] == ["web"] and preview["unchanged"] == ["side"]
    assert "+GREETING='bonjour'" in preview["diff"]
    assert "DB_PASSWORD='********'" in preview["diff"]  # secrets masked in the diff
    password = srv.api("GET", f"/api/instances/{name}/settings").json()
    assert password["parameters"][1]["value"] == "********"
    changed = srv.cli("app", "set", name, "--set", "GREETING=bonjour", "--yes", "--json")
    assert changed.returncode == 0, changed.stderr + changed.stdout
    after = _ids(name)
    assert after["side"] == before["side"] and after["web"] != before["web"]
    assert _env(after["web"])["GREETING"] == "bonjour"
    assert _env(after["web"])["DB_PASSWORD"] == secret  # the generated secret is kept
    assert secret not in changed.stdout

    revisions = json.loads(srv.cli("app", "revisions", name, "--json").stdout)
    assert [(r["number"], r["reason"]) for r in revisions] == [
        (3, "settings"), (2, "settings"), (1, "install")]
    assert revisions[0]["current"] and revisions[0]["parameters"]["GREETING"] == "bonjour"

    back = srv.cli("app", "set", name, "--revision", "1", "--yes")
    assert back.returncode == 0, back.stderr + back.stdout
    reverted = _ids(name)
    assert reverted["side"] == before["side"] and reverted["web"] != after["web"]
    assert _env(reverted["web"])["GREETING"] == "hello"
    assert _env(reverted["web"])["DB_PASSWORD"] == secret
    assert srv.api("GET", f"/api/instances/{name}").json()["status"] == "running"
    assert len(json.loads(srv.cli("app", "revisions", name, "--json").stdout)) == 4


def test_port_change_and_a_taken_port_refused(srv: Server) -> None:
    name = "t-set-web"
    folder = FIXTURE_APPS / "web-app"
    _install(srv, name, {"kind": "app", "manifest": (folder / "stackhub-app.yaml").read_text(),
                         "compose": (folder / "compose.yaml").read_text()})
    port = srv.api("GET", f"/api/instances/{name}").json()["ports"][0]["host_port"]
    new_port = port + 7
    moved = srv.cli("app", "set", name, "--set", f"WEB_PORT={new_port}", "--yes")
    assert moved.returncode == 0, moved.stderr + moved.stdout
    instance = srv.api("GET", f"/api/instances/{name}").json()
    assert instance["ports"][0]["host_port"] == new_port
    assert http_text(new_port) == "hello\n"
    # a port another program holds is refused while planning: nothing stops
    holder = srv.api("GET", f"/api/instances/{name}").json()["containers"][0]["name"]
    taken = srv.cli("app", "set", name, "--set", f"WEB_PORT={srv.port}", "--yes")
    assert taken.returncode != 0 and "in use" in taken.stdout + taken.stderr
    assert srv.api("GET", f"/api/instances/{name}").json()["containers"][0]["name"] == holder
    assert http_text(new_port) == "hello\n"


FAILING_MANIFEST = """\
format: stackhub/v1
id: starter
name: Starter
version: "1.0.0"
title: {en: Starter}
main: {service: web, port: 80, path: /}
parameters:
  - {name: WEB_PORT, type: port, default: 18170}
  - {name: EXIT_CODE, type: number, default: 0}
"""
FAILING_COMPOSE = """\
services:
  web:
    image: stackhub-test/web:1
    ports: ["${WEB_PORT}:80"]
    command: ["sh", "-c", "[ ${EXIT_CODE} = 0 ] || exit ${EXIT_CODE}; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
"""


def test_a_change_that_fails_to_start_is_put_back(srv: Server) -> None:
    name = "t-set-fails"
    _install(srv, name, {"kind": "app", "manifest": FAILING_MANIFEST,
                         "compose": FAILING_COMPOSE})
    port = srv.api("GET", f"/api/instances/{name}").json()["ports"][0]["host_port"]
    failed = srv.cli("app", "set", name, "--set", "EXIT_CODE=3", "--yes")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "previous settings were put back" in failed.stderr
    assert "exit code 3" in failed.stderr
    shown = json.loads(srv.cli("app", "settings", name, "--json").stdout)
    assert {p["name"]: p["value"] for p in shown["parameters"]}["EXIT_CODE"] == "0"
    assert srv.wait_status(name, {"running"})["status"] == "running"
    assert http_text(port) == "hello\n"
    revisions = json.loads(srv.cli("app", "revisions", name, "--json").stdout)
    assert [r["reason"] for r in revisions] == ["install"]
