"""The containers view and host metrics against the real engine and a real server process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.leftovers import mark_install

pytestmark = pytest.mark.integration
IMAGE = os.environ.get("STACKHUB_TEST_IMAGE", "stackhub-test/web:1")


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check,
                          timeout=120)


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token

    def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}/api{path}", timeout=60,
                             headers={"Authorization": f"Bearer {self.token}"}, **kwargs)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    data = tmp_path_factory.mktemp("system-api") / "data"
    mark_install(data)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    log = data.parent / "server.log"
    env = {**os.environ, "STACKHUB_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1"}
    stackhub = str(Path(sys.executable).with_name("stackhub"))
    with log.open("wb") as out:
        proc = subprocess.Popen([stackhub, "serve", "--port", str(port)], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        yield Api(url, (data / "secrets" / "admin-token").read_text().strip())
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def unique() -> Iterator[str]:
    name = f"shtest-sys-{uuid.uuid4().hex[:8]}"
    yield name
    docker("rm", "-f", name, check=False)
    docker("volume", "rm", "-f", name, f"{name}-managed", check=False)
    docker("network", "rm", name, check=False)
    docker("rmi", f"stackhub-test/{name}:1", check=False)


def test_container_lifecycle(api: Api, unique: str) -> None:
    docker("run", "-d", "--name", unique, "-e", "DB_PASSWORD=hunter2", "-e", "TZ=UTC",
           "-p", "127.0.0.1::80", "-v", f"{unique}:/data", "--stop-timeout", "1", IMAGE,
           "httpd", "-f", "-p", "80", "-h", "/www")
    listed = api("GET", "/system/containers")
    assert listed.status_code == 200
    mine = next(c for c in listed.json() if c["name"] == unique)
    assert mine["state"] == "running" and not mine["managed"] and mine["image"] == IMAGE
    assert any(p["container_port"] == 80 and p["host_port"] for p in mine["ports"])

    detail = api("GET", f"/system/containers/{unique}").json()
    env = {e["name"]: e for e in detail["env"]}
    assert env["DB_PASSWORD"]["redacted"] and "hunter2" not in json.dumps(detail)
    assert env["TZ"]["value"] == "UTC"
    assert any(m["type"] == "volume" and m["name"] == unique for m in detail["mounts"])

    stopped = api("POST", f"/system/containers/{unique}/stop")
    assert stopped.status_code == 200 and stopped.json()["state"] == "exited"
    started = api("POST", f"/system/containers/{unique}/start")
    assert started.json()["state"] == "running"
    assert api("POST", f"/system/containers/{unique}/restart").json()["state"] == "running"
    assert api("POST", f"/system/containers/{unique}/explode").status_code == 422

    volume = next(v for v in api("GET", "/system/volumes").json() if v["name"] == unique)
    assert volume["containers"] == 1
    assert api("DELETE", f"/system/volumes/{unique}").status_code == 409  # in use

    refused = api("DELETE", f"/system/containers/{unique}")
    assert refused.status_code == 409, refused.text  # running: the engine wants force
    assert refused.json()["error"]["code"] == "conflict"
    assert api("DELETE", f"/system/containers/{unique}", params={"force": "true"}).status_code \
        == 204
    assert docker("container", "inspect", unique, check=False).returncode != 0
    missing = api("GET", f"/system/containers/{unique}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert api("DELETE", f"/system/volumes/{unique}").status_code == 204


def test_images_volumes_networks(api: Api, unique: str) -> None:
    tag = f"stackhub-test/{unique}:1"
    docker("tag", IMAGE, tag)
    images = api("GET", "/system/images").json()
    assert any(tag in i["tags"] for i in images)
    assert api("DELETE", f"/system/images/{tag}").status_code == 204
    assert not any(tag in i["tags"] for i in api("GET", "/system/images").json())
    # a dangling image of a known size (an untagged commit adding 200 kB) for prune to find
    docker("run", "--name", f"{unique}-dangle", "--network", "none", IMAGE, "sh", "-c",
           "head -c 200000 /dev/urandom > /blob")
    dangling = docker("commit", f"{unique}-dangle").stdout.strip()
    docker("rm", f"{unique}-dangle")
    pruned = api("POST", "/system/images/prune")  # dangling only: never a tagged test image
    assert pruned.status_code == 200, pruned.text
    assert any(dangling.split(":")[-1] in d for d in pruned.json()["deleted"]), pruned.json()
    assert pruned.json()["space_reclaimed"] >= 200_000, pruned.json()
    assert docker("image", "inspect", dangling, check=False).returncode != 0
    assert docker("image", "inspect", IMAGE, check=False).returncode == 0

    docker("volume", "create", f"{unique}-managed", "--label", "io.stackhub.managed=true",
           "--label", "io.stackhub.instance=ghost")
    volumes = {v["name"]: v for v in api("GET", "/system/volumes").json()}
    assert volumes[f"{unique}-managed"]["managed"]
    assert volumes[f"{unique}-managed"]["instance"] == "ghost"
    # its instance is gone: an orphan, which the engine view may remove (kept data of a removed
    # instance is listed and purged under `stackhub app kept`, where it is named as such)
    assert api("DELETE", f"/system/volumes/{unique}-managed").status_code == 204
    assert f"{unique}-managed" not in {v["name"] for v in api("GET", "/system/volumes").json()}

    docker("network", "create", unique)
    networks = {n["name"]: n for n in api("GET", "/system/networks").json()}
    assert not networks[unique]["managed"] and networks["bridge"]["builtin"]
    assert api("DELETE", "/system/networks/bridge").status_code == 409
    assert api("DELETE", f"/system/networks/{unique}").status_code == 204
    assert unique not in {n["name"] for n in api("GET", "/system/networks").json()}


def test_metrics_one_off_and_live(api: Api) -> None:
    one = api("GET", "/system/metrics")
    assert one.status_code == 200
    sample = one.json()["sample"]
    assert 0 <= sample["cpu"]["percent"] <= 100
    assert sample["memory"]["total"] > 0 and sample["disk"]["total"] > 0

    ws_url = api.url.replace("http://", "ws://") + "/api/ws"
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {api.token}"},
                 open_timeout=10) as ws:
        assert json.loads(ws.recv(10))["type"] == "auth_ok"
        ws.send(json.dumps({"id": 7, "type": "subscribe", "topic": "metrics"}))
        samples = []
        deadline = time.monotonic() + 10
        while len(samples) < 2 and time.monotonic() < deadline:
            message = json.loads(ws.recv(10))
            if message["type"] == "event":
                assert message["id"] == 7
                assert message["event"]["topic"] == "metrics"
                samples.append(message["event"]["data"])
        assert len(samples) == 2
        assert 1.0 <= samples[1]["at"] - samples[0]["at"] <= 4.0  # every ~2 s
        assert {"rx_rate", "tx_rate"} <= set(samples[0]["net"])
        live = api("GET", "/system/metrics").json()
        assert len(live["history"]) >= 2  # the live sampler's history is shared
        ws.send(json.dumps({"id": 8, "type": "unsubscribe", "subscription": 7}))
    time.sleep(0.5)
    assert api("GET", "/system/metrics").json()["history"] == []  # stopped with the last one
