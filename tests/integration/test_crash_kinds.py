"""Every operation kind is journaled, closed as interrupted after SIGKILL, and converges.

The table below must name every kind the runner knows (`operations.runner.KINDS`): a new long
job without a crash scenario here fails `test_every_kind_has_a_crash_scenario`.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import stackhub.services  # noqa: F401  (registers every domain's operation kinds)
from stackhub.operations.runner import KINDS
from tests.integration.conftest import Server, instance_containers
from tests.integration.gateway_env import AcmeLab, fetch, running_lab
from tests.integration.test_crash import app_source, wait_for

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Scenario:
    """Where to pause the server, what to do before, and how the user converges after."""

    pause: str
    before: tuple[str, ...]
    request: tuple[str, str]
    converge: tuple[str, ...]
    status: str | None  # the instance's status once converged (None: removed)
    group: str = "app"  # the CLI group of `before` and `converge` (`stackhub GROUP VERB NAME`)
    body: tuple[tuple[str, str], ...] = ()  # the request's JSON body ({name}: the instance)
    acme: bool = False  # needs the test ACME world and DNS (tests/integration/gateway_env.py)


SCENARIOS = {
    "install": Scenario("before-record", (), ("POST", "/api/instances"), ("retry",), "running"),
    "remove": Scenario("removed-containers", (), ("DELETE", "/api/instances/{name}"),
                       ("remove", "--yes"), None),
    "start": Scenario("before-start", ("stop",), ("POST", "/api/instances/{name}/start"),
                      ("start",), "running"),
    "stop": Scenario("before-stop", (), ("POST", "/api/instances/{name}/stop"), ("stop",),
                     "stopped"),
    "restart": Scenario("before-restart", (), ("POST", "/api/instances/{name}/restart"),
                        ("restart",), "running"),
    "backup": Scenario("backup-stopped", (), ("POST", "/api/backups/instances/{name}"),
                       ("create",), "running", group="backup"),
    "restore": Scenario("restore-swapped", ("create",),
                        ("POST", "/api/backups/instances/{name}/snapshots/latest/restore"),
                        ("restore", "latest", "--yes"), "running", group="backup"),
    # updates (issue 13): an update killed after writing the new definition is rolled back at
    # start (the old definition and the data from its snapshot), as is a killed rollback
    "reconfigure": Scenario("settings-written", (), ("PUT", "/api/instances/{name}/settings"),
                            ("set", "--revision", "1", "--yes"), "running",
                            body=(("revision", "1"),)),
    "update": Scenario("update-applied", (), ("POST", "/api/instances/{name}/update"),
                       ("start",), "running", body=(("force", "true"), ("stability", "1"))),
    "rollback": Scenario("rollback-started", ("update --force --yes --stability 1",),
                         ("POST", "/api/instances/{name}/rollback"), ("start",), "running"),
    # clone (issue 13): killed while the original is stopped for its snapshot, the original
    # starts again and the half-made copy goes; cloning again converges. A killed auto-update
    # is closed like an update (nothing was applied before its check)
    "clone": Scenario("backup-stopped", (), ("POST", "/api/instances/{name}/clone"),
                      ("clone", "t-kind-clone-copy", "--yes"), "running",
                      body=(("name", "{name}-copy"),)),
    "auto-update": Scenario("auto-update-checking", (),
                            ("POST", "/api/instances/{name}/auto-update/run"), ("start",),
                            "running"),
    # domain (issue 11): killed before the certificate; adding it again after the restart
    # binds it and it serves over HTTPS (checked below with Pebble's roots)
    "domain": Scenario("domain-before-certificate", (), ("POST", "/api/domains"),
                       ("add", "crash.example.test"), "running", group="domain",
                       body=(("instance", "{name}"), ("domain", "crash.example.test")),
                       acme=True),
    # protect (issue 11): killed after the choice is recorded and the routes loaded, before
    # the web port is limited to 127.0.0.1; the after-crash hook publishes it as recorded
    "protect": Scenario("protect-before-publish", (),
                        ("PUT", "/api/instances/{name}/protection"), ("protect",), "running",
                        body=(("protected", "true"),)),
}


@pytest.fixture(scope="module")
def acme_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeLab]:
    """Pebble and its DNS, started only for the scenarios that need them."""
    yield from running_lab(tmp_path_factory)


# kinds whose subject is not an instance have their crash scenario beside their other tests
ELSEWHERE = {"wildcard": ("tests.integration.test_gateway_dns01",
                          "test_a_killed_renewal_is_interrupted_and_the_next_check_converges"),
             "system-backup": ("tests.integration.test_backup",
                               "test_a_killed_system_backup_is_interrupted_and_the_next_one_"
                               "succeeds")}


def test_every_kind_has_a_crash_scenario() -> None:
    assert set(SCENARIOS) | set(ELSEWHERE) == set(KINDS)
    for module, test in ELSEWHERE.values():
        assert callable(getattr(importlib.import_module(module), test, None)), (module, test)


def _send(srv: Server, method: str, path: str, body: dict[str, object] | None) -> None:
    """Send a request that the paused server never answers."""
    def call() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the server is killed mid-request
            httpx.request(method, f"{srv.url}{path}", json=body, timeout=60,
                          headers={"Authorization": f"Bearer {srv.token}"})

    threading.Thread(target=call, daemon=True).start()


@pytest.mark.parametrize("kind", sorted(SCENARIOS))
def test_kill_during_each_kind(kind: str, crash_server: Server, tmp_path: Path,
                               request: pytest.FixtureRequest) -> None:
    scenario = SCENARIOS[kind]
    name = f"t-kind-{kind}"
    marker = tmp_path / "paused"
    if scenario.acme:
        lab: AcmeLab = request.getfixturevalue("acme_lab")
        lab.dns("add-a", host="crash.example.test.", addresses=["127.0.0.1"])
        crash_server.extra_env.update(lab.env())
    crash_server.start(STACKHUB_FAULT_PAUSE=scenario.pause, STACKHUB_FAULT_MARKER=str(marker))
    source = {"source": app_source("web-app"), "name": name}
    if kind != "install":
        accepted = crash_server.api("POST", "/api/instances", json=source)
        assert accepted.status_code == 202, accepted.text
        assert crash_server.wait_operation(accepted.json()["operation"]["id"])["state"] == \
            "succeeded"
        for verb in scenario.before:  # a verb may carry options after it ("update --yes")
            verb, *options = verb.split()
            assert crash_server.cli(scenario.group, verb, name, *options).returncode == 0
    method, path = scenario.request
    body = {key: value.format(name=name) for key, value in scenario.body} or None
    _send(crash_server, method, path.format(name=name), source if kind == "install" else body)
    wait_for(marker.exists, what=f"the pause at {scenario.pause}")
    crash_server.kill9()
    crash_server.start()
    ops = crash_server.api("GET", "/api/operations", params={"instance": name}).json()["items"]
    last = ops[0]
    assert (last["kind"], last["state"]) == (kind, "interrupted"), last
    assert "StackHub stopped" in last["error"]
    if kind == "protect":  # the after-crash hook limits the web port as recorded
        wait_for((crash_server.data_dir / "instances" / name / "loopback.json").is_file,
                 what="the after-crash hook's loopback marker")
    listed = crash_server.cli("op", "list", "--instance", name, "--json")
    assert listed.returncode == 0, listed.stderr
    assert f'"{last["id"]}"' in listed.stdout
    result = crash_server.cli(scenario.group, *scenario.converge[:1], name,
                              *scenario.converge[1:])
    assert result.returncode == 0, result.stderr + result.stdout
    if scenario.status is None:
        wait_for(lambda: crash_server.api("GET", f"/api/instances/{name}").status_code == 404,
                 what="the instance to be gone")
        assert instance_containers(name) == []
    else:
        assert crash_server.wait_status(name, {scenario.status})["status"] == scenario.status
    if scenario.acme:  # recovered: the domain serves the app with Pebble's certificate
        assert "https://crash.example.test serves" in result.stdout, result.stdout
        served = fetch(lab, "crash.example.test", lab.bundle)
        assert served.status_code == 200 and "X-StackHub-Page" not in served.headers
        listed = crash_server.api("GET", "/api/domains", params={"instance": name}).json()
        row = next(d for d in listed if d["name"] == "crash.example.test")
        assert row["state"] == "active" and row["issuer"].startswith("Pebble"), row
