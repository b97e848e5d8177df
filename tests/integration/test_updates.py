"""Safe updates with a real server, engine, restic and a local store: a v2 whose health check
fails and a v2 that exits are rolled back with the data byte-identical, a good v2 updates, the
last update rolls back, a downgrade and an unpullable image are refused with the app running,
and a new digest behind the same tag in the local registry is found and applied."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Server, docker, http_text

pytestmark = pytest.mark.integration

REGISTRY = "127.0.0.1:5000"
STABILITY = "3"


def write_keeper(root: Path, version: str, image: str, extra: str = "") -> None:
    """A store app keeping data in a bind folder and a named volume."""
    folder = root / "apps" / "keeper"
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"format": "stackhub/v1", "id": "keeper", "name": "Keeper", "version": version,
                "title": {"en": "Keeper"}, "tagline": {"en": "keeps data"},
                "category": ["utilities"], "main": {"service": "web", "port": 80},
                "parameters": [{"name": "WEB_PORT", "type": "port", "default": 18400},
                               {"name": "TOKEN", "type": "secret", "length": 20}]}
    (folder / "stackhub-app.yaml").write_text(json.dumps(manifest))
    (folder / "compose.yaml").write_text(
        f"services:\n  web:\n    image: {image}\n    ports: ['${{WEB_PORT}}:80']\n"
        "    environment:\n      TOKEN: ${TOKEN}\n"
        "    volumes:\n      - ${APP_DATA_DIR}/state:/state\n      - db:/db\n"
        f"    stop_grace_period: 1s\n{extra}volumes:\n  db: {{}}\n")


UNHEALTHY = ("    healthcheck:\n      test: ['CMD', 'false']\n      interval: 1s\n"
             "      timeout: 1s\n      retries: 1\n")
EXITS = "    command: ['sh', '-c', 'httpd -p 80 -h /www; sleep 1.5; exit 4']\n"


def fingerprint(srv: Server, name: str) -> dict[str, str]:
    """Hashes of every file in the instance's bind folder and named volume."""
    found: dict[str, str] = {}
    root = srv.data_dir / "appdata" / name
    for path in sorted(root.rglob("*")):
        if path.is_file():
            found[f"bind:{path.relative_to(root)}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    volume = f"stackhub-{name}_db"
    out = docker("run", "--rm", "--network", "none", "-v", f"{volume}:/v:ro",
                 "stackhub-test/web:1", "sh", "-c",
                 "cd /v && find . -type f | sort | xargs -r md5sum").stdout
    for line in out.splitlines():
        digest, file = line.split(maxsplit=1)
        found[f"volume:{file}"] = digest
    return found


def write_data(srv: Server, name: str, text: str) -> None:
    state = srv.data_dir / "appdata" / name / "state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "notes.txt").write_text(text)
    container = srv.api("GET", f"/api/instances/{name}").json()["containers"][0]["name"]
    docker("exec", container, "sh", "-c", f"echo '{text}' > /db/records")


@pytest.fixture
def store(server: Server, tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "store"
    write_keeper(root, "1.0.0", "stackhub-test/web:1")
    added = server.api("POST", "/api/stores", json={"name": "upd", "source": str(root),
                                                    "local": True})
    assert added.status_code in (200, 201), added.text
    yield root


def sync(srv: Server) -> None:
    answer = srv.api("POST", "/api/stores/upd/sync")
    assert answer.status_code == 200, answer.text


def instance(srv: Server, name: str) -> dict[str, object]:
    return dict(srv.api("GET", f"/api/instances/{name}").json())


def test_update_rolls_back_bad_versions_and_applies_a_good_one(server: Server,
                                                                 store: Path) -> None:
    name = "t-upd-keeper"
    answer = server.api("POST", "/api/instances", json={
        "source": {"kind": "catalog", "ref": "upd/keeper"}, "name": name})
    assert answer.status_code == 202, answer.text
    assert server.wait_operation(answer.json()["operation"]["id"])["state"] == "succeeded"
    port = int(instance(server, name)["ports"][0]["host_port"])  # type: ignore[index]
    token = server.api("GET", f"/api/instances/{name}/settings").json()
    write_data(server, name, "written by v1")
    before = fingerprint(server, name)
    assert len(before) == 2

    # nothing newer: refused, nothing happens
    same = server.cli("app", "update", name, "--yes")
    assert same.returncode != 0 and "up to date" in same.stderr + same.stdout

    for bad, why in ((UNHEALTHY, "unhealthy"), (EXITS, "during the stability window")):
        write_keeper(store, "2.0.0", "stackhub-test/web:2", bad)
        sync(server)
        checked = json.loads(server.cli("app", "check-updates", "--json").stdout)
        mine = next(c for c in checked if c["instance"] == name)
        assert (mine["update_available"], mine["update_kind"], mine["latest_version"]) == \
            (True, "version", "2.0.0")
        failed = server.cli("app", "update", name, "--yes", "--stability", STABILITY)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "rolled back to 1.0.0" in failed.stderr and why in failed.stderr, failed.stderr
        assert server.wait_status(name, {"running"})["version"] == "1.0.0"
        assert http_text(port) == "hello\n"
        assert fingerprint(server, name) == before
        ops = server.api("GET", "/api/operations", params={"instance": name}).json()["items"]
        assert (ops[0]["kind"], ops[0]["state"]) == ("update", "failed")
        steps = [s["name"] for s in ops[0]["steps"]]
        assert {"pull", "stop", "snapshot", "apply", "rollback"} <= set(steps), steps

    # a good v2: updated, values and secrets kept, data untouched
    write_keeper(store, "2.0.0", "stackhub-test/web:2")
    sync(server)
    listed = json.loads(server.cli("app", "list", "--json").stdout)
    mine_listed = next(i for i in listed if i["name"] == name)
    assert mine_listed["update_available"] and mine_listed["latest_version"] == "2.0.0"
    assert mine_listed["update_kind"] == "version"
    good = server.cli("app", "update", name, "--yes", "--stability", STABILITY)
    assert good.returncode == 0, good.stdout + good.stderr
    # with --yes the preview prints once the update started, still before the result
    said = " ".join(good.stdout.split())
    assert said.index(f"{name} 1.0.0: version update to 2.0.0") < said.index(f"{name} updated")
    updated = instance(server, name)
    assert (updated["version"], updated["status"]) == ("2.0.0", "running")
    assert not updated["update_available"]
    assert http_text(port) == "hello v2\n"
    assert fingerprint(server, name) == before
    assert server.api("GET", f"/api/instances/{name}/settings").json() == {
        **token, "version": "2.0.0", "revision": 2}
    revisions = json.loads(server.cli("app", "revisions", name, "--json").stdout)
    assert revisions[0]["reason"] == "update to 2.0.0" and revisions[0]["snapshot"]
    snaps = server.api("GET", "/api/backups/snapshots", params={"instance": name})
    if snaps.status_code == 200:
        assert any(s["kind"] == "pre-update" for s in snaps.json())

    # data written after the update goes away with a rollback (the CLI warns of it)
    write_data(server, name, "written by v2")
    rolled = server.cli("app", "rollback", name, "--yes")
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "anything written since is lost" in rolled.stderr
    assert server.wait_status(name, {"running"})["version"] == "1.0.0"
    assert http_text(port) == "hello\n"
    assert fingerprint(server, name) == before

    # the store goes back to an older version: never a downgrade
    write_keeper(store, "0.9.0", "stackhub-test/web:1")
    sync(server)
    down = server.cli("app", "update", name, "--yes")
    assert down.returncode != 0 and "never downgrades" in down.stderr + down.stdout

    # an image that cannot be pulled: the app keeps running, nothing changed
    write_keeper(store, "3.0.0", f"{REGISTRY}/stackhub-test/missing-{secrets.token_hex(3)}:1")
    sync(server)
    nopull = server.cli("app", "update", name, "--yes", "--stability", STABILITY)
    assert nopull.returncode == 1 and "pull" in nopull.stderr, nopull.stderr
    assert instance(server, name)["version"] == "1.0.0"
    assert instance(server, name)["status"] == "running"
    assert http_text(port) == "hello\n"


def test_digest_behind_the_same_tag(server: Server) -> None:
    name = "t-upd-digest"
    repo = f"{REGISTRY}/stackhub-test/upd-{secrets.token_hex(4)}"
    ref = f"{repo}:stable"
    docker("tag", "stackhub-test/web:1", ref)
    docker("push", ref)
    compose = (f"services:\n  web:\n    image: {ref}\n    ports: ['18450:80']\n"
               "    stop_grace_period: 1s\n")
    answer = server.api("POST", "/api/instances", json={
        "source": {"kind": "compose", "compose": compose}, "name": name})
    assert answer.status_code == 202, answer.text
    assert server.wait_operation(answer.json()["operation"]["id"])["state"] == "succeeded"
    port = int(instance(server, name)["ports"][0]["host_port"])  # type: ignore[index]
    checked = json.loads(server.cli("app", "check-updates", "--json").stdout)
    assert next(c for c in checked if c["instance"] == name)["update_available"] is False

    docker("tag", "stackhub-test/web:2", ref)
    docker("push", ref)
    docker("tag", "stackhub-test/web:1", ref)  # the local tag stays on the old image
    checked = json.loads(server.cli("app", "check-updates", "--json").stdout)
    mine = next(c for c in checked if c["instance"] == name)
    assert (mine["update_available"], mine["update_kind"]) == (True, "digest"), mine
    assert mine["images"][0]["image"] == ref
    done = server.cli("app", "update", name, "--yes", "--stability", STABILITY)
    assert done.returncode == 0, done.stdout + done.stderr
    assert http_text(port) == "hello v2\n"
    again = json.loads(server.cli("app", "check-updates", "--json").stdout)
    assert next(c for c in again if c["instance"] == name)["update_available"] is False
    docker("rmi", ref, check=False)


def test_a_database_major_change_is_never_applied_without_consent(server: Server,
                                                                   store: Path) -> None:
    name = "t-upd-dbmajor"
    docker("tag", "stackhub-test/web:1", "stackhub-test/postgres:15")
    write_keeper(store, "1.0.0", "stackhub-test/postgres:15")
    sync(server)
    answer = server.api("POST", "/api/instances", json={
        "source": {"kind": "catalog", "ref": "upd/keeper"}, "name": name})
    assert answer.status_code == 202, answer.text
    assert server.wait_operation(answer.json()["operation"]["id"])["state"] == "succeeded"
    write_keeper(store, "2.0.0", "stackhub-test/postgres:16")
    sync(server)
    checked = json.loads(server.cli("app", "check-updates", "--json").stdout)
    mine = next(c for c in checked if c["instance"] == name)
    assert mine["update_available"] and "major version" in (mine["blocked"] or ""), mine
    assert mine["blocked_code"] == "database_major"
    refused = server.cli("app", "update", name, "--yes")
    assert refused.returncode != 0
    assert "postgres:15 -> stackhub-test/postgres:16" in refused.stderr + refused.stdout
    assert "1.0.0: version update to 2.0.0" in refused.stdout  # the preview, though refused
    assert "--allow-database-major" in refused.stderr + refused.stdout
    ops = server.api("GET", "/api/operations", params={"instance": name}).json()["items"]
    assert [o["kind"] for o in ops] == ["install"]
    assert instance(server, name)["status"] == "running"
    docker("rmi", "stackhub-test/postgres:15", check=False)
