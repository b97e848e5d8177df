"""Umbrel apps with dependencies install for real: refused without them, wired to them with.

Fixtures: tests/fixtures/deps (a node app at a fixed IP exporting a computed secret and its
data folder, a client that depends on it, an app depending on one the store lacks). One server
for the module; the sandbox runs the node's exports.sh.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from stackhub import labels
from stackhub.apps import scripts
from tests.integration.conftest import Server, docker, free_port, http_text, instance_containers

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "deps"
PORTS: dict[str, int] = {}
LINK = labels.project_name("dep-node") + "_stackhub_link"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("deps")
    store = root / "store"
    for app in ("dep-node", "dep-client", "dep-orphan"):
        shutil.copytree(FIXTURES / app, store / app)
        PORTS[app] = free_port()
        for name in ("umbrel-app.yml", "docker-compose.yml"):
            path = store / app / name
            path.write_text(path.read_text().replace("__PORT__", str(PORTS[app])))
    server = Server(root / "data")
    server.start()
    added = server.api("POST", "/api/stores", json={"name": "dps", "source": str(store),
                                                     "local": True})
    assert added.status_code == 201, added.text
    try:
        yield server
    finally:
        server.stop()
        server.cleanup_engine()


def client_plan(srv: Server, name: str = "t-client") -> dict[str, object]:
    answer = srv.api("POST", "/api/plans", json={"source": {"kind": "catalog",
                                                            "ref": "dps/dep-client"},
                                                 "name": name})
    return {"status": answer.status_code, **answer.json()}


def test_a_missing_dependency_is_named_and_nothing_is_made(srv: Server) -> None:
    shown = srv.api("GET", "/api/catalog/apps/dps/dep-client").json()
    assert shown["installable"], shown.get("problems")
    orphan = srv.api("GET", "/api/catalog/apps/dps/dep-orphan").json()
    assert not orphan["installable"]
    assert orphan["problems"] == ["needs the app 'not-in-this-store', which this store does "
                                  "not offer"]
    refused = client_plan(srv)
    assert refused["status"] == 422, refused
    error = refused["error"]
    assert isinstance(error, dict)
    assert error["details"] == {"missing_dependencies": ["dep-node"]}
    assert "--with-deps" in error["message"]
    done = srv.cli("app", "install", "dps/dep-client", "--name", "t-client", "--yes")
    assert done.returncode != 0
    assert "needs 'dep-node' installed first" in done.stderr + done.stdout
    assert srv.api("GET", "/api/instances/t-client").status_code == 404
    assert srv.api("GET", "/api/instances/dep-node").status_code == 404
    assert instance_containers("t-client") == []


def test_with_deps_installs_the_dependency_first_and_wires_it(srv: Server) -> None:
    done = srv.cli("app", "install", "dps/dep-client", "--name", "t-client", "--yes",
                   "--with-deps", timeout=600)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Installing the dependency dps/dep-node as dep-node" in done.stdout
    assert srv.api("GET", "/api/instances/dep-node").json()["status"] == "running"
    text = http_text(PORTS["dep-client"], path="/env.txt")
    env = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    seed = scripts.load_seed(srv.data_dir / "secrets")
    token = scripts.derive_entropy(scripts.instance_key(seed, "dep-node", "dep-node"),
                                   "app-dep-node-token")
    assert env == {"NODE": "dep-node_server_1:8080", "TOKEN": token}
    # the client reaches the node by its Umbrel name on the node's link network...
    assert http_text(PORTS["dep-client"], path="/fetched.txt").strip() == token
    # ...and reads the node's data folder, mounted read-only as the app asks
    assert http_text(PORTS["dep-client"], path="/shared.txt").strip() == "node-data"
    again = client_plan(srv, "t-client-2")
    assert again["status"] == 200, again
    assert again["dependencies"] == {"dep-node": "dep-node"}
    assert again["risks"] == []  # the link network and the node's folder are StackHub's own


def test_the_link_network_holds_only_the_node_and_its_dependents(srv: Server) -> None:
    info = json.loads(docker("network", "inspect", LINK).stdout)[0]
    members = sorted(c["Name"] for c in info["Containers"].values())
    node = [c["Names"] for c in instance_containers("dep-node")]
    client = [c["Names"] for c in instance_containers("t-client")]
    assert members == sorted(node + client)
    assert len(members) == 2
    assert info["Internal"] is False and info["Driver"] == "bridge"


def test_removing_a_dependency_in_use_is_refused_naming_its_dependents(srv: Server) -> None:
    refused = srv.api("DELETE", "/api/instances/dep-node")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["details"] == {"dependents": ["t-client"]}
    done = srv.cli("app", "remove", "dep-node", "--yes")
    assert done.returncode != 0
    assert "t-client" in done.stderr + done.stdout
    assert srv.api("GET", "/api/instances/dep-node").json()["status"] == "running"
    gone = srv.cli("app", "remove", "t-client", "--yes")
    assert gone.returncode == 0, gone.stderr + gone.stdout
    freed = srv.cli("app", "remove", "dep-node", "--yes")
    assert freed.returncode == 0, freed.stderr + freed.stdout
    assert docker("network", "inspect", LINK, check=False).returncode != 0
