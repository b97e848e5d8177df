"""Hot backups with real restic and the real engine: the app's dump runs, it is never stopped.

The fixture app declares a `backup` section: its dump command (an argument list run in its
`web` service) copies a "live database" file into `dump/`; the live file and a cache volume
are skipped. A failing dump fails the backup clearly, writes no snapshot, and the app keeps
running.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from tests.integration.conftest import Server, docker
from tests.integration.test_backup import cli_json, volume_tree

pytestmark = pytest.mark.integration

IMAGE = os.environ.get("STACKHUB_TEST_IMAGE", "stackhub-test/web:1")
NAME = "h2hot"
MANIFEST = """\
format: stackhub/v1
id: hotkeeper
name: Hot keeper
version: "1.0.0"
title: {en: Hot keeper}
main: {service: web, port: 80, path: /}
parameters:
  - {name: WEB_PORT, type: port, default: 18170, label: {en: Web port}}
backup:
  service: web
  dump: [sh, -c, "mkdir -p /state/dump && cp /state/live/db.bin /state/dump/db.tmp &&
    mv /state/dump/db.tmp /state/dump/db.bin"]
  timeout: 60
  skip: [state/live]
  skip_volumes: [cache]
"""
COMPOSE = f"""\
services:
  web:
    image: {IMAGE}
    ports: ["${{WEB_PORT}}:80"]
    volumes:
      - ${{APP_DATA_DIR}}/state:/state
      - db:/db
      - cache:/cache
    stop_grace_period: 1s
volumes:
  db: {{}}
  cache: {{}}
"""
SOURCE = {"kind": "app", "manifest": MANIFEST, "compose": COMPOSE}


def started_at(name: str) -> str:
    """Return when the instance's web container last started (changes on any restart)."""
    return docker("inspect", "-f", "{{.State.StartedAt}}", f"stackhub-{name}-web-1").stdout


def sha(data: bytes) -> str:
    """Return the sha256 of `data` in hex."""
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def hot(server: Server) -> Server:
    """A server with the hot keeper installed and data in its folder and both volumes."""
    answer = server.api("POST", "/api/instances", json={"source": SOURCE, "name": NAME})
    assert answer.status_code == 202, answer.text
    assert server.wait_operation(answer.json()["operation"]["id"])["state"] == "succeeded"
    docker("exec", f"stackhub-{NAME}-web-1", "sh", "-c",
           "mkdir -p /state/live && head -c 500000 /dev/urandom > /state/live/db.bin && "
           "echo kept > /state/notes.txt && echo v > /db/v.txt && echo c > /cache/c.txt")
    return server


def test_hot_backup_runs_the_dump_skips_live_files_and_never_stops_the_app(hot: Server) -> None:
    srv = hot
    data = srv.data_dir / "appdata" / NAME / "state"
    live = (data / "live" / "db.bin").read_bytes()
    before = started_at(NAME)

    created = srv.cli("backup", "create", NAME)
    assert created.returncode == 0, created.stderr + created.stdout
    assert started_at(NAME) == before  # never stopped nor restarted
    ops = srv.api("GET", "/api/operations", params={"instance": NAME, "kind": "backup"}).json()
    steps = [s["name"] for s in ops["items"][0]["steps"]]
    assert "dump" in steps and "stop" not in steps and "start" not in steps, steps
    assert sha((data / "dump" / "db.bin").read_bytes()) == sha(live)  # the dump ran in it
    snap = cli_json(srv, "backup", "list", NAME)[0]

    # restored beside the original: the dump and the copied volume are there, the skipped
    # live file and the skipped volume's content are not
    copy = f"{NAME}-copy"
    made = srv.cli("backup", "restore", NAME, snap["short_id"], "--as", copy, "--json")
    assert made.returncode == 0, made.stderr + made.stdout
    assert srv.wait_status(copy, {"running"})["status"] == "running"
    restored = srv.data_dir / "appdata" / copy / "state"
    assert sha((restored / "dump" / "db.bin").read_bytes()) == sha(live)
    assert (restored / "notes.txt").read_text() == "kept\n"
    assert not (restored / "live").exists()
    assert "v.txt" in volume_tree(f"stackhub-{copy}_db")
    assert "c.txt" not in volume_tree(f"stackhub-{copy}_cache")
    assert "c.txt" in volume_tree(f"stackhub-{NAME}_cache")  # the original is untouched

    # a second, unchanged backup keeps the volume's staged files untouched (restic skips them
    # by their metadata); the skipped volume is never copied
    staged = srv.data_dir / "backups" / "stage" / NAME / "volumes" / "db"
    first = {p.name: (p.lstat().st_ino, p.lstat().st_ctime_ns) for p in staged.rglob("*")}
    assert "v.txt" in first
    again = srv.cli("backup", "create", NAME)
    assert again.returncode == 0, again.stderr + again.stdout
    assert {p.name: (p.lstat().st_ino, p.lstat().st_ctime_ns) for p in staged.rglob("*")} == \
        first
    assert not (staged.parent / "cache").exists() and not (staged.parent / "cache.tar").exists()
    assert len(cli_json(srv, "backup", "list", NAME)) == 2


def test_a_failing_dump_fails_the_backup_clearly_and_leaves_the_app_running(
        hot: Server) -> None:
    srv = hot
    docker("exec", f"stackhub-{NAME}-web-1", "rm", "/state/live/db.bin")  # the dump's cp fails
    before = started_at(NAME)
    result = srv.cli("backup", "create", NAME, "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    failed = json.loads(result.stdout)["operation"]
    assert failed["state"] == "failed"
    assert "dump command in service 'web' failed (exit code 1)" in failed["error"], failed
    assert "db.bin" in failed["error"]  # the command's own output says why
    assert started_at(NAME) == before
    assert srv.api("GET", f"/api/instances/{NAME}").json()["status"] == "running"
    assert cli_json(srv, "backup", "list", NAME) == []
    status = srv.api("GET", "/api/backups/status", params={"instance": NAME})
    assert status.status_code == 200, status.text
    assert json.dumps(status.json()).count("dump command") >= 1
    assert not (srv.data_dir / "backups" / "stage" / NAME).exists()
