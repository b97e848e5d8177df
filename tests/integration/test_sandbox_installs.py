"""Umbrel apps that rely on store scripts install for real, their scripts run in the sandbox.

Fixtures: tests/fixtures/sandbox (an exports.sh with logic and derive_entropy, a pre-start
hook preparing files and chowning to 1000:1000, a hook that never ends). One server for the
module, three installs.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackhub.apps import scripts
from tests.integration.conftest import Server, docker, free_port, http_text, instance_containers

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sandbox"
PORTS: dict[str, int] = {}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("sandbox")
    store = root / "store"
    for app in ("sbx-exports", "sbx-hooked", "sbx-forever", "sbx-linked",
                "sbx-risky"):
        shutil.copytree(FIXTURES / app, store / app)
        PORTS[app] = free_port()
        for name in ("umbrel-app.yml", "docker-compose.yml"):
            path = store / app / name
            path.write_text(path.read_text().replace("__PORT__", str(PORTS[app])))
    server = Server(root / "data", extra_env={"STACKHUB_SANDBOX_TIMEOUT": "6"})
    server.start()
    added = server.api("POST", "/api/stores", json={"name": "sbx", "source": str(store),
                                                     "local": True})
    assert added.status_code == 201, added.text
    try:
        yield server
    finally:
        server.stop()
        server.cleanup_engine()


def served_env(port: int) -> dict[str, str]:
    text = http_text(port, path="/env.txt")
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_exports_with_logic_become_the_instances_values(srv: Server) -> None:
    shown = srv.api("GET", "/api/catalog/apps/sbx/sbx-exports").json()
    assert shown["installable"], shown.get("problems")
    done = srv.cli("app", "install", "sbx/sbx-exports", "--name", "t-exp", "--yes")
    assert done.returncode == 0, done.stderr + done.stdout
    env = served_env(PORTS["sbx-exports"])
    seed = scripts.load_seed(srv.data_dir / "secrets")
    key = scripts.instance_key(seed, "t-exp", "sbx-exports")
    assert env["RPC_PASS"] == scripts.derive_entropy(key, "app-sbx-exports-rpc-pass")
    assert env["NETWORK"] == "mainnet"
    assert env["LAN_IP"] == scripts.host_addresses()[0]
    assert env["PEERS"] == "none"  # ls-installed lists only this app so far
    saved = (srv.data_dir / "appdata" / "t-exp" / "data" / "saved.txt").read_text().strip()
    assert env["SAVED"] == saved and len(saved) == 16
    kept = json.loads((srv.data_dir / "instances" / "t-exp" / "exports.json").read_text())
    assert kept["APP_SBX_EXPORTS_RPC_PASS"] == env["RPC_PASS"]
    assert (srv.data_dir / "secrets" / scripts.SEED_FILE).stat().st_mode & 0o777 == 0o600
    shown = {p["name"]: p for p in srv.api("GET", "/api/instances/t-exp/settings").json()[
        "parameters"]}
    assert shown["APP_SBX_EXPORTS_NETWORK"]["value"] == "mainnet"
    assert not shown["APP_SBX_EXPORTS_NETWORK"]["editable"]
    assert shown["APP_SBX_EXPORTS_RPC_PASS"]["value"] == "********"
    # a settings change renders the project again: the exported values stay
    port = free_port()
    changed = srv.api("PUT", "/api/instances/t-exp/settings",
                      json={"values": {"APP_PORT": str(port)}})
    assert changed.status_code == 202, changed.text
    assert srv.wait_operation(changed.json()["operation"]["id"])["state"] == "succeeded"
    assert served_env(port) == env


def test_pre_start_hook_prepares_files_and_exports_read_them(srv: Server) -> None:
    done = srv.cli("app", "install", "sbx/sbx-hooked", "--name", "t-hook", "--yes")
    assert done.returncode == 0, done.stderr + done.stdout
    assert http_text(PORTS["sbx-hooked"]) == "sandboxed\n"
    data = srv.data_dir / "appdata" / "t-hook" / "data"
    for path in (data / "www", data / "www" / "index.html", data / "config" / "settings.json"):
        assert (path.stat().st_uid, path.stat().st_gid) == (1000, 1000), path
    key = (data / "api-key").read_text().strip()
    running = [c for c in instance_containers("t-hook") if c["State"] == "running"]
    assert running
    shown = docker("exec", running[0]["ID"], "cat", "/tmp/k").stdout.strip()
    assert shown == f"key={key}"  # exports ran again after the hook wrote the key
    # Umbrel runs pre-start before every start: a restart prepares the files again
    (data / "www" / "index.html").unlink()
    again = srv.cli("app", "restart", "t-hook")
    assert again.returncode == 0, again.stderr + again.stdout
    assert http_text(PORTS["sbx-hooked"]) == "sandboxed\n"
    assert (data / "api-key").read_text().strip() == key  # made once, kept


def test_a_hook_that_never_ends_fails_the_install_cleanly(srv: Server) -> None:
    done = srv.cli("app", "install", "sbx/sbx-forever", "--name", "t-loop", "--yes",
                   timeout=120)
    assert done.returncode != 0
    output = done.stderr + done.stdout
    assert "stopped after 6 s" in output, output
    assert "waiting for a file that never appears" in output  # the hook's own output
    assert srv.api("GET", "/api/instances/t-loop").status_code == 404  # nothing kept
    assert instance_containers("t-loop") == []
    left = docker("ps", "-aq", "--filter", "label=org.stackhub.sandbox.instance=t-loop").stdout
    assert left.strip() == ""
    assert not (srv.data_dir / "instances" / "t-loop").exists()


def test_a_hook_cannot_point_a_mount_at_the_host(srv: Server) -> None:
    done = srv.cli("app", "install", "sbx/sbx-linked", "--name", "t-link", "--yes")
    assert done.returncode != 0
    assert "does not mount through links" in done.stderr + done.stdout
    assert instance_containers("t-link") == []
    assert srv.api("GET", "/api/instances/t-link").status_code == 404


def test_exports_cannot_make_the_project_riskier_than_the_plan(srv: Server) -> None:
    plan = srv.api("POST", "/api/plans", json={"source": {"kind": "catalog",
                                                          "ref": "sbx/sbx-risky"}})
    assert plan.status_code == 200, plan.text
    assert plan.json()["risks"] == []  # the placeholder is harmless when planned
    done = srv.cli("app", "install", "sbx/sbx-risky", "--name", "t-risky", "--yes")
    assert done.returncode != 0
    assert "riskier than the plan" in done.stderr + done.stdout
    assert instance_containers("t-risky") == []
    assert srv.api("GET", "/api/instances/t-risky").status_code == 404
