"""Container mode (issue 15, item 4): the image scripts/build-image makes runs StackHub against
the host's engine, and an app's bind folder is a host path under the data root.

The image is built from the session's wheel, once per recipe (its label; a second run reuses
it), from the Debian 12 root made with mmdebstrap (scripts/build-image's cached base root, which
test_installer.py shares), no registry pull. The data root is a temp folder mounted at the same path
inside and outside, as the documented `docker run` does with /var/lib/stackhub.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import REPO, START_WAIT, docker, free_port, http_text
from tests.leftovers import mark_install

pytestmark = pytest.mark.integration

TAG = "stackhub-t/stackhub:itest"
IMAGE = os.environ.get("STACKHUB_TEST_IMAGE", "stackhub-test/web:1")
MANIFEST = """\
format: stackhub/v1
id: boxed
name: Boxed
version: "1.0.0"
title: {en: Bind folder check}
tagline: {en: Keeps a file in a bind folder}
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


@pytest.fixture(scope="module")
def image(wheel_file: tuple[Path, Path]) -> str:
    """Build the image from the session's wheel (or reuse the one with the same recipe label)."""
    started = time.monotonic()
    built = subprocess.run(["bash", str(REPO / "scripts" / "build-image"), "--tag", TAG,
                            "--wheel", str(wheel_file[0])],
                           capture_output=True, text=True, timeout=1800, check=False,
                           env={**os.environ, "STACKHUB_SKIP_WEB_BUILD": "1"})
    assert built.returncode == 0, built.stderr[-3000:]
    assert built.stdout.strip().splitlines()[-1] == TAG
    print(f"image ready in {time.monotonic() - started:.0f} s: {built.stderr.strip()[-200:]}")
    return TAG


@pytest.fixture
def container(image: str, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """StackHub in a container: the engine's socket and the data root (same path) mounted."""
    data = tmp_path / "data"
    mark_install(data)
    port = free_port()
    name = f"stackhub-t-ctr-{secrets.token_hex(4)}"
    docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8420",
           "-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", f"{data}:{data}",
           "-e", f"STACKHUB_DATA_DIR={data}",
           # a pool of its own: private test dockerds on this host make bridges the shared
           # engine does not know of, in the default pool (a clash black-holes the app's port)
           "-e", "STACKHUB_SUBNET_POOL=10.239.0.0/16", image)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_WAIT
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            state = docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip()
            logs = docker("logs", "--tail", "40", name, check=False)
            assert state == "true", logs.stdout + logs.stderr
            assert time.monotonic() < deadline, logs.stdout + logs.stderr
            time.sleep(0.5)
        yield name, url, data
    finally:
        docker("rm", "-f", name, check=False)
        instances = data / "instances"
        for project in (p.name for p in instances.iterdir()) if instances.is_dir() else ():
            docker("compose", "-p", f"stackhub-{project}", "down", "-v", "--remove-orphans",
                   "--timeout", "1", check=False)


def test_container_mode_installs_an_app_with_host_paths(
        container: tuple[str, str, Path]) -> None:
    name, url, data = container
    token = (data / "secrets" / "admin-token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    web_port = free_port()
    answer = httpx.post(f"{url}/api/instances", headers=headers, timeout=60, json={
        "source": {"kind": "app", "manifest": MANIFEST % web_port, "compose": COMPOSE},
        "name": "t-boxed"})
    assert answer.status_code == 202, answer.text
    op_id = answer.json()["operation"]["id"]
    deadline = time.monotonic() + 180
    while (op := httpx.get(f"{url}/api/operations/{op_id}", headers=headers,
                           timeout=30).json())["state"] == "running":
        assert time.monotonic() < deadline, op
        time.sleep(0.5)
    assert op["state"] == "succeeded", op
    assert http_text(web_port)

    # the app's bind folder is the host's folder under the data root
    mounts = json.loads(docker("inspect", "-f", "{{json .Mounts}}",
                               "stackhub-t-boxed-web-1").stdout)
    state = data / "appdata" / "t-boxed" / "state"
    assert [m["Source"] for m in mounts if m["Destination"] == "/state"] == [str(state)]
    docker("exec", "stackhub-t-boxed-web-1", "sh", "-c", "echo from-the-app > /state/mark")
    assert (state / "mark").read_text() == "from-the-app\n"

    # the server in the container reports itself as one; the engine it reaches is the host's
    doctor = docker("exec", name, "stackhub", "doctor", "--json", check=False)
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["service"]["level"] == "ok", checks["service"]
    assert "container" in checks["service"]["message"]
    assert checks["engine"]["level"] == "ok" and checks["compose"]["level"] == "ok"
    version = httpx.get(f"{url}/api/system/version", headers=headers, timeout=30).json()
    label = docker("image", "inspect", "-f", '{{index .Config.Labels "org.stackhub.version"}}',
                   TAG).stdout.strip()
    assert version["version"] == label
