"""Upgrade-path rules and release notes with a real server, engine, restic and a local store.

An app declaring `update: {min_from: 1.4.0}` is refused over 1.0.0 before anything stops, with
the intermediate version named; 1.0.0 -> 1.4.0 -> 2.0.0 then works, release notes shown on the
way (API, CLI, `--json`); a store that goes back to an older version offers no update, and
`app update` refuses it with nothing changed. `update_available` is a bool everywhere.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Server, http_text

pytestmark = pytest.mark.integration

IMAGES = {"1": "stackhub-test/web:1", "2": "stackhub-test/web:2"}
NAME = "t-path-keeper"


def write_app(root: Path, version: str, image: str, **extra: Any) -> None:
    """The store's one app at `version`, keeping data in a bind folder."""
    folder = root / "apps" / "pathkeeper"
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"format": "stackhub/v1", "id": "pathkeeper", "name": "Path keeper",
                "version": version, "title": {"en": "Path keeper"}, "category": ["utilities"],
                "main": {"service": "web", "port": 80},
                "parameters": [{"name": "WEB_PORT", "type": "port", "default": 18430}], **extra}
    (folder / "stackhub-app.yaml").write_text(json.dumps(manifest))
    (folder / "compose.yaml").write_text(
        f"services:\n  web:\n    image: {image}\n    ports: ['${{WEB_PORT}}:80']\n"
        "    volumes:\n      - ${APP_DATA_DIR}/state:/state\n    stop_grace_period: 1s\n")


def sync(srv: Server) -> None:
    answer = srv.api("POST", "/api/stores/paths/sync")
    assert answer.status_code == 200, answer.text


def mine(items: list[dict[str, Any]], key: str = "instance") -> dict[str, Any]:
    return next(i for i in items if i[key] == NAME)


def data_hash(srv: Server) -> str:
    return hashlib.sha256((srv.data_dir / "appdata" / NAME / "state" / "notes.txt")
                          .read_bytes()).hexdigest()


def operations(srv: Server) -> list[str]:
    items = srv.api("GET", "/api/operations", params={"instance": NAME}).json()["items"]
    return [f"{o['kind']}:{o['state']}" for o in items]


def assert_unchanged(srv: Server, version: str, ops: list[str], digest: str, port: int) -> None:
    """Nothing happened: same version, running, no new operation, same data, still answers."""
    now = srv.api("GET", f"/api/instances/{NAME}").json()
    assert (now["version"], now["status"]) == (version, "running"), now
    assert operations(srv) == ops
    assert data_hash(srv) == digest
    assert http_text(port).startswith("hello")


def test_min_from_release_notes_and_no_downgrade(server: Server, tmp_path: Path) -> None:
    root = tmp_path / "store"
    write_app(root, "1.0.0", IMAGES["1"])
    added = server.api("POST", "/api/stores", json={"name": "paths", "source": str(root),
                                                    "local": True})
    assert added.status_code in (200, 201), added.text
    answer = server.api("POST", "/api/instances", json={
        "source": {"kind": "catalog", "ref": "paths/pathkeeper"}, "name": NAME})
    assert answer.status_code == 202, answer.text
    assert server.wait_operation(answer.json()["operation"]["id"])["state"] == "succeeded"
    port = int(server.api("GET", f"/api/instances/{NAME}").json()["ports"][0]["host_port"])
    state = server.data_dir / "appdata" / NAME / "state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "notes.txt").write_text("written by 1.0.0\n")
    digest = data_hash(server)
    listed = mine(json.loads(server.cli("app", "list", "--json").stdout), "name")
    assert listed["update_available"] is False and listed["latest_version"] is None

    # 2.0.0 can only be updated to from 1.4.0: refused before anything stops
    notes = {"en": "Needs **1.4.0** first.", "zh-CN": "需要先升级到 **1.4.0**。"}
    write_app(root, "2.0.0", IMAGES["2"], release_notes=notes, update={"min_from": "1.4.0"})
    sync(server)
    checked = mine(json.loads(server.cli("app", "check-updates", "--json").stdout))
    assert (checked["update_available"], checked["latest_version"], checked["min_from"]) == (
        True, "2.0.0", "1.4.0")
    assert "intermediate version 1.4.0" in (checked["blocked"] or ""), checked
    assert checked["blocked_code"] == "min_from"
    assert checked["release_notes"] == notes
    listed = mine(json.loads(server.cli("app", "list", "--json").stdout), "name")
    assert (listed["update_available"], listed["latest_version"]) == (True, "2.0.0")
    assert mine(server.api("GET", "/api/updates").json())["release_notes"] == notes
    known = mine(json.loads(server.cli("app", "updates", "--json").stdout))
    assert (known["latest_version"], known["min_from"]) == ("2.0.0", "1.4.0")
    shown = server.cli("app", "updates")
    assert shown.returncode == 0 and "Needs 1.4.0 first." in shown.stdout.replace("**", "")
    ops = operations(server)
    refused = server.cli("app", "update", NAME, "--yes")
    assert refused.returncode != 0
    said = refused.stdout + refused.stderr
    assert "first update it to the intermediate version 1.4.0, then to 2.0.0" in said, said
    assert "nothing was changed" in said
    api_refused = server.api("POST", f"/api/instances/{NAME}/update", json={})
    assert api_refused.status_code == 409
    assert api_refused.json()["error"]["details"]["min_from"] == "1.4.0"
    assert_unchanged(server, "1.0.0", ops, digest, port)

    # the intermediate version, then 2.0.0: both apply, release notes shown on the way
    write_app(root, "1.4.0", IMAGES["1"], release_notes={"en": "The bridge release."})
    sync(server)
    text = server.cli("app", "check-updates")
    assert text.returncode == 0 and "The bridge release." in text.stdout, text.stdout
    done = server.cli("app", "update", NAME, "--yes", "--json", "--stability", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["operation"]["state"] == "succeeded"
    assert result["update"]["release_notes"] == {"en": "The bridge release."}
    write_app(root, "2.0.0", IMAGES["2"], release_notes=notes, update={"min_from": "1.4.0"})
    sync(server)
    assert mine(server.api("GET", "/api/updates").json())["blocked"] is None
    done = server.cli("app", "update", NAME, "--yes", "--stability", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Release notes" in done.stdout and "Needs 1.4.0 first." in done.stdout.replace(
        "**", ""), done.stdout
    assert http_text(port) == "hello v2\n"
    assert data_hash(server) == digest

    # the store goes back to an older version: no update offered, and never a downgrade
    write_app(root, "1.9.0", IMAGES["1"])
    sync(server)
    checked = mine(json.loads(server.cli("app", "check-updates", "--json").stdout))
    assert checked["update_available"] is False and checked["latest_version"] is None
    listed = mine(json.loads(server.cli("app", "list", "--json").stdout), "name")
    assert listed["update_available"] is False
    assert all(u["instance"] != NAME for u in server.api("GET", "/api/updates").json())
    assert "No updates known" in server.cli("app", "updates").stdout
    ops = operations(server)
    down = server.cli("app", "update", NAME, "--yes")
    assert down.returncode != 0
    assert "1.9.0, which is not newer than the installed 2.0.0" in down.stdout + down.stderr
    assert "never downgrades" in down.stdout + down.stderr
    assert_unchanged(server, "2.0.0", ops, digest, port)
    assert http_text(port) == "hello v2\n"
