"""Clone, auto-update and the pruning of replaced images with one real server and engine.

A clone of an app with data in a bind folder and a named volume is byte-identical, gets new
ports, keeps the secrets and runs beside the original; a clone onto an existing name is refused
with nothing changed. An automatic update inside its window applies a new digest from the local
registry through the safe flow; the image it replaced is kept, then pruned once expired.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.conftest import Server, docker, http_text
from tests.integration.test_updates import REGISTRY, fingerprint, write_data, write_keeper

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("clone")
    server = Server(root / "data", extra_env={
        "TZ": "UTC", "STACKHUB_UPDATE_STABILITY": "2", "STACKHUB_AUTO_UPDATE_TICK": "1",
        "STACKHUB_IMAGE_PRUNE_INTERVAL": "0"})
    server.start()
    write_keeper(root / "store", "1.0.0", "stackhub-test/web:1")
    added = server.api("POST", "/api/stores", json={"name": "cl", "source": str(root / "store"),
                                                    "local": True})
    assert added.status_code in (200, 201), added.text
    try:
        yield server
    finally:
        server.stop()
        server.cleanup_engine()


def install(srv: Server, name: str, source: dict[str, object]) -> dict[str, object]:
    answer = srv.api("POST", "/api/instances", json={"source": source, "name": name})
    assert answer.status_code == 202, answer.text
    assert srv.wait_operation(answer.json()["operation"]["id"])["state"] == "succeeded"
    return dict(srv.api("GET", f"/api/instances/{name}").json())


def env_of(name: str) -> list[str]:
    found = docker("ps", "-q", "--filter", f"label=com.docker.compose.project=stackhub-{name}")
    data = json.loads(docker("inspect", found.stdout.split()[0]).stdout)
    return sorted(e for e in data[0]["Config"]["Env"] if e.startswith("TOKEN="))


def test_clone_copies_the_data_with_new_ports_and_refuses_a_taken_name(srv: Server) -> None:
    source, copy = "t-cl-src", "t-cl-copy"
    original = install(srv, source, {"kind": "catalog", "ref": "cl/keeper"})
    write_data(srv, source, "cloned data")
    before = fingerprint(srv, source)
    assert len(before) == 2

    done = srv.cli("app", "clone", source, copy, "--yes", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    assert answer["operation"]["state"] == "succeeded"
    assert answer["operation"]["kind"] == "clone" and answer["operation"]["target"] == copy
    cloned = srv.wait_status(copy, {"running"})
    assert srv.wait_status(source, {"running"})["status"] == "running"
    old_port = original["ports"][0]["host_port"]  # type: ignore[index]
    new_port = cloned["ports"][0]["host_port"]
    assert new_port != old_port and [p["host_port"] for p in answer["ports"]] == [new_port]
    assert fingerprint(srv, copy) == before  # bind folder and volume, byte for byte
    assert env_of(copy) == env_of(source) and env_of(copy)[0] != "TOKEN="  # same secret
    assert http_text(int(new_port)) == "hello\n" and http_text(int(old_port)) == "hello\n"
    ops = srv.api("GET", "/api/operations", params={"instance": source}).json()["items"]
    assert (ops[0]["kind"], ops[0]["state"]) == ("clone", "succeeded")
    assert {"stop", "snapshot", "fetch", "place", "start"} <= {s["name"] for s in ops[0]["steps"]}

    # onto an existing name, an invalid name or the same name: refused, nothing changed
    count = srv.api("GET", "/api/operations").json()["total"]
    taken = srv.api("POST", f"/api/instances/{source}/clone", json={"name": copy})
    assert taken.status_code == 409, taken.text
    assert "already exists" in taken.json()["error"]["message"]
    bad = srv.api("POST", f"/api/instances/{source}/clone", json={"name": "Bad_Name"})
    assert bad.status_code == 422, bad.text
    same = srv.api("POST", f"/api/instances/{source}/clone", json={"name": source})
    assert same.status_code == 422, same.text
    refused = srv.cli("app", "clone", source, copy, "--yes")
    assert refused.returncode != 0 and "already exists" in refused.stderr + refused.stdout
    assert srv.api("GET", "/api/operations").json()["total"] == count
    assert srv.api("GET", f"/api/instances/{copy}").json()["ports"] == cloned["ports"]
    assert fingerprint(srv, copy) == before and fingerprint(srv, source) == before


def _window_now() -> str:
    start = datetime.now(UTC) - timedelta(minutes=1)
    end = start + timedelta(minutes=90)
    return f"daily {start:%H:%M}-{end:%H:%M}"


def test_auto_update_applies_a_digest_in_its_window_and_old_images_are_pruned(
        srv: Server, tmp_path: Path) -> None:
    name = "t-au-digest"
    ref = f"{REGISTRY}/stackhub-test/au-{secrets.token_hex(4)}:stable"
    label = secrets.token_hex(4)
    for base, tag in (("stackhub-test/web:2", f"{ref}-next"), ("stackhub-test/web:1", ref)):
        (tmp_path / "Dockerfile").write_text(f"FROM {base}\nLABEL stackhub.test={label}\n")
        docker("build", "-q", "-t", tag, str(tmp_path))
    v1 = docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()
    docker("push", ref)
    compose = (f"services:\n  web:\n    image: {ref}\n    ports: ['18470:80']\n"
               "    stop_grace_period: 1s\n")
    install(srv, name, {"kind": "compose", "compose": compose})
    shown = srv.cli("app", "auto-update", name, "--json")
    assert json.loads(shown.stdout)["enabled"] is False  # off by default
    bad = srv.api("PUT", f"/api/instances/{name}/auto-update",
                  json={"enabled": True, "window": "someday 04:00"})
    assert bad.status_code == 422 and "sun 04:00" in bad.json()["error"]["message"]
    assert srv.api("GET", f"/api/instances/{name}/auto-update").json()["enabled"] is False

    docker("tag", f"{ref}-next", ref)  # a new digest behind the same tag in the registry
    docker("push", ref)
    docker("tag", v1, ref)  # the local tag stays on the old image
    docker("rmi", f"{ref}-next")
    on = srv.cli("app", "auto-update", name, "--on", "--window", _window_now(), "--json")
    assert on.returncode == 0, on.stderr
    assert json.loads(on.stdout)["enabled"] is True and json.loads(on.stdout)["kind"] == "digest"
    deadline, last = time.monotonic() + 120, {}
    while time.monotonic() < deadline:
        last = srv.api("GET", f"/api/instances/{name}/auto-update").json()
        if last["last_result"]:
            break
        time.sleep(0.5)
    assert last["last_result"] == "updated", last
    ops = srv.api("GET", "/api/operations", params={"instance": name}).json()["items"]
    assert (ops[0]["kind"], ops[0]["state"]) == ("auto-update", "succeeded")
    assert {"check", "pull", "snapshot", "stability"} <= {s["name"] for s in ops[0]["steps"]}
    port = srv.api("GET", f"/api/instances/{name}").json()["ports"][0]["host_port"]
    assert http_text(int(port)) == "hello v2\n"

    # the replaced image is kept (a rollback within 7 days re-tags it), then pruned
    kept = srv.api("GET", "/api/updates/replaced-images").json()
    mine = [k for k in kept if k["instance"] == name]
    assert [(k["image_id"], k["ref"]) for k in mine] == [(v1, ref)]
    assert srv.api("POST", "/api/updates/prune").json() == {}
    assert docker("image", "inspect", v1, check=False).returncode == 0
    with sqlite3.connect(srv.data_dir / "stackhub.db") as conn:
        conn.execute("UPDATE replaced_images SET replaced_at = ? WHERE image_id = ?",
                     ((datetime.now(UTC) - timedelta(days=8)).isoformat(), v1))
    pruned = srv.cli("app", "replaced-images", "--prune", "--json")
    assert json.loads(pruned.stdout)["pruned"] == {v1: "removed"}, pruned.stdout
    assert docker("image", "inspect", v1, check=False).returncode != 0
    assert http_text(int(port)) == "hello v2\n"  # the image in use stays
    docker("rmi", ref, check=False)
