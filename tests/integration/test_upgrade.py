"""Upgrades from an older wheel keep everything; a downgrade is refused and changes nothing.

Three wheels, all installed into one fresh venv outside the checkout, one after the other:
an OLD one built from commit UPGRADE_FROM of this repository (``git archive``, no change to the
checkout; kept in OLD_CACHE by commit, so later sessions reuse it), this tree as a NEW release
(the session's wheel restamped with its version plus ``.post1``), and this tree as it is (an
older version than NEW, with the refusal). OLD runs an instance, a member, a store and a
setting; NEW must keep them all with the instance's containers untouched; then the older
wheel must refuse to start on NEW's database, naming both versions, and change nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import REPO, START_WAIT, Server, docker, free_port, http_text
from tests.leftovers import mark_install

pytestmark = pytest.mark.integration

# the last commit before databases recorded StackHub's version (issue 15): a "previous release"
UPGRADE_FROM = "6d867b2"
IMAGE = os.environ.get("STACKHUB_TEST_IMAGE", "stackhub-test/web:1")
MANIFEST = """\
format: stackhub/v1
id: keeper
name: Keeper
version: "1.0.0"
title: {en: Data keeper}
tagline: {en: Keeps data in a folder}
category: [utilities]
main: {service: web, port: 80, path: /}
parameters:
  - {name: WEB_PORT, type: port, default: %d, label: {en: Web port}}
"""
COMPOSE = f"""\
services:
  web:
    image: {IMAGE}
    ports: ["${{WEB_PORT}}:80"]
    volumes:
      - ${{APP_DATA_DIR}}/state:/state
    stop_grace_period: 1s
"""
CURRENT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
NEWER = f"{CURRENT}.post1"
# OLD's wheel never changes (a fixed commit): built once per machine, not once per session
OLD_CACHE = Path(os.environ.get("STACKHUB_TEST_CACHE", "/var/tmp/stackhub-test-cache"))


def _clean_env(**extra: str) -> dict[str, str]:
    """An environment that cannot point StackHub back at the checkout."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STACKHUB_", "PYTHON", "VIRTUAL_ENV"))}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def _build(tree: Path, out: Path) -> Path:
    """Build a wheel without the console (not needed here) from a source tree."""
    out.mkdir(parents=True, exist_ok=True)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
                            str(out), str(tree)], capture_output=True, text=True, timeout=600,
                           env=_clean_env(STACKHUB_WHEEL_NO_CONSOLE="1"), check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    return next(out.glob("stackhub-*.whl"))


def _restamp(wheel: Path, version: str, out: Path) -> Path:
    """Copy a built wheel under another version: metadata, dist-info folder and RECORD."""
    name, old = wheel.name.split("-")[:2]
    before, after = f"{name}-{old}.dist-info/", f"{name}-{version}.dist-info/"
    out.mkdir(parents=True, exist_ok=True)
    target = out / wheel.name.replace(f"-{old}-", f"-{version}-", 1)
    record: list[str] = []
    with zipfile.ZipFile(wheel) as source, \
            zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as copy:
        for item in source.infolist():
            path = item.filename.replace(before, after, 1)
            if path == after + "RECORD":
                continue
            data = source.read(item)
            if path == after + "METADATA":
                data = data.replace(f"\nVersion: {old}\n".encode(),
                                    f"\nVersion: {version}\n".encode(), 1)
                assert f"Version: {version}".encode() in data
            copy.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{path},sha256={digest.decode()},{len(data)}")
        record.append(f"{after}RECORD,,")
        copy.writestr(after + "RECORD", "\n".join(record) + "\n")
    return target


def _old_wheel(base: Path) -> Path:
    """OLD's wheel from the cache, or built from ``git archive UPGRADE_FROM`` and cached."""
    found = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify",
                            f"{UPGRADE_FROM}^{{commit}}"], capture_output=True, text=True,
                           check=False)
    assert found.returncode == 0, (f"commit {UPGRADE_FROM} is not in this clone (a shallow "
                                   "clone? fetch with --unshallow)")
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    cached = OLD_CACHE / f"upgrade-old-{found.stdout.strip()}-{python}"
    wheels = sorted(cached.glob("stackhub-*.whl"))
    if wheels:
        return wheels[0]
    old_tree = base / "old-src"
    old_tree.mkdir()
    archive = subprocess.Popen(["git", "-C", str(REPO), "archive", UPGRADE_FROM],
                               stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(old_tree)], stdin=archive.stdout, check=True,
                   timeout=300)
    assert archive.wait(60) == 0
    built = _build(old_tree, base / "old")
    OLD_CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=OLD_CACHE, prefix=".building-"))
    (staging / built.name).write_bytes(built.read_bytes())
    try:
        staging.rename(cached)  # atomic: a parallel session's copy may have won the race
    except OSError:
        (staging / built.name).unlink()
        staging.rmdir()
    return built


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory,
           wheel_file: tuple[Path, Path]) -> dict[str, Path]:
    """OLD (a past commit), NEW (this tree's wheel, restamped newer) and DOWN (this tree's
    wheel: the session's, tests/integration/conftest.py)."""
    base = tmp_path_factory.mktemp("upgrade-wheels")
    started = time.monotonic()
    built = {"old": _old_wheel(base), "new": _restamp(wheel_file[0], NEWER, base / "new"),
             "down": wheel_file[0]}
    print(f"upgrade wheels ready in {time.monotonic() - started:.1f} s")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Path]) -> Path:
    """A fresh venv with OLD installed, dependencies pinned to the dev venv's versions."""
    base = tmp_path_factory.mktemp("upgrade-venv")
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
                            capture_output=True, text=True, check=True).stdout
    constraints = base / "constraints.txt"
    constraints.write_text("".join(line + "\n" for line in frozen.splitlines()
                                   if not line.lower().startswith("stackhub")))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=600)
    _pip(venv, "install", "-q", "-c", str(constraints), str(wheels["old"]))
    return venv


def _pip(venv: Path, *args: str) -> None:
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", *args],
                          capture_output=True, text=True, timeout=900, env=_clean_env(),
                          cwd=venv.parent, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


class VenvServer(Server):
    """`stackhub serve` of the venv's installed wheel (not the checkout's)."""

    def __init__(self, data_dir: Path, venv: Path) -> None:
        super().__init__(data_dir)
        self.venv = venv

    @property
    def env(self) -> dict[str, str]:
        return _clean_env(STACKHUB_DATA_DIR=str(self.data_dir), STACKHUB_URL=self.url)

    def start(self, **extra: str) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(self.venv / "bin" / "stackhub"), "serve", "--port", str(self.port)],
                env={**self.env, **extra}, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=self.data_dir.parent)
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server did not start: {self.log.read_text()[-2000:]}")


@pytest.fixture
def srv(tmp_path: Path, venv: Path) -> Iterator[VenvServer]:
    server = VenvServer(tmp_path / "data", venv)
    mark_install(server.data_dir)
    try:
        yield server
    finally:
        server.stop()
        server.cleanup_engine()


def _container(name: str) -> dict[str, Any]:
    out = docker("inspect", f"stackhub-{name}-web-1").stdout
    state: dict[str, Any] = json.loads(out)[0]
    return {"id": state["Id"], "started": state["State"]["StartedAt"],
            "running": state["State"]["Running"]}


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for name in ("stackhub.db", "stackhub.db-wal"):
        path = folder / name
        digest.update(path.read_bytes() if path.exists() else b"-")
    return digest.hexdigest()


def test_upgrade_keeps_everything_and_a_downgrade_is_refused(
        srv: VenvServer, wheels: dict[str, Path], venv: Path) -> None:
    # OLD: an instance with data in its bind folder, a member, a store, a setting
    srv.start()
    port = free_port()
    answer = srv.api("POST", "/api/instances", json={"source": {
        "kind": "app", "manifest": MANIFEST % port, "compose": COMPOSE}, "name": "t-upg"})
    assert answer.status_code == 202, answer.text
    assert srv.wait_operation(answer.json()["operation"]["id"])["state"] == "succeeded"
    note = srv.data_dir / "appdata" / "t-upg" / "state" / "note.txt"
    note.write_text("kept across upgrades\n")
    assert srv.api("POST", "/api/users", json={"username": "mia", "password":
                                               "a long enough password 1"}).status_code == 201
    store = srv.api("POST", "/api/stores", json={"name": "mine", "source": str(REPO / "store"),
                                                 "local": True, "sync": False})
    assert store.status_code == 201, store.text
    security = srv.api("PUT", "/api/settings/security",
                       json={"allowed_origins": ["https://hub.example.test"]})
    assert security.status_code == 200, security.text
    assert srv.api("GET", "/api/system/version").status_code == 404  # OLD has no such route
    before = _container("t-upg")
    assert before["running"]
    srv.stop()

    # NEW over OLD: migrated, everything kept, the instance never restarted
    _pip(venv, "install", "-q", "--no-deps", str(wheels["new"]))
    srv.start()
    version = srv.api("GET", "/api/system/version").json()
    assert version["version"] == NEWER
    assert version["previous_version"] and version["previous_version"].startswith("schema ")
    assert version["upgraded_at"]
    assert srv.api("GET", "/api/health").json()["version"] == NEWER
    assert srv.wait_status("t-upg", {"running"})["status"] == "running"
    assert _container("t-upg") == before
    assert http_text(port)  # the app answers at its port
    assert note.read_text() == "kept across upgrades\n"
    users = {u["name"] for u in srv.api("GET", "/api/users").json()}
    assert "mia" in users
    assert "mine" in {s["name"] for s in srv.api("GET", "/api/stores").json()}
    assert srv.api("GET", "/api/settings/security").json()["allowed_origins"] == [
        "https://hub.example.test"]
    cli = subprocess.run([str(venv / "bin" / "stackhub"), "version", "--json"],
                         capture_output=True, text=True, env=srv.env, timeout=60, check=False)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["server"]["version"] == NEWER
    srv.stop()

    # DOWN (an older version) on NEW's database: refused, naming both versions; nothing changed
    digest = _digest(srv.data_dir)
    _pip(venv, "install", "-q", "--no-deps", "--force-reinstall", str(wheels["down"]))
    refused = subprocess.run([str(venv / "bin" / "stackhub"), "serve", "--port",
                              str(srv.port)], capture_output=True, text=True, env=srv.env,
                             timeout=120, stdin=subprocess.DEVNULL, check=False)
    assert refused.returncode != 0
    message = refused.stderr
    assert "StackHub refuses to start" in message, message[-3000:]
    assert f"last used by StackHub {NEWER}" in message
    assert f"this is StackHub {CURRENT}" in message
    assert "Nothing was changed" in message and "Traceback" not in message
    assert _digest(srv.data_dir) == digest
    assert _container("t-upg") == before  # the app kept running through it all
