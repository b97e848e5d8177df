"""File manager and engine view against the real engine and a real server process.

Every engine object made here carries a unique name, and the prune runs with `only` limited to
them: other suites share this engine and their objects must never be pruned by this test.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import Server, docker

pytestmark = pytest.mark.integration
IMAGE = os.environ.get("STACKHUB_TEST_IMAGE", "stackhub-test/web:1")
COMPOSE = """services:
  web:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    volumes:
      - ./data:/data
      - cache:/cache
volumes:
  cache: {{}}
"""


def install(server: Server, name: str, image: str) -> None:
    answer = server.api("POST", "/api/instances", json={
        "source": {"kind": "compose", "compose": COMPOSE.format(image=image)}, "name": name})
    assert answer.status_code == 202, answer.text
    op = server.wait_operation(answer.json()["operation"]["id"])
    assert op["state"] == "succeeded", op


@pytest.fixture(scope="module")
def server(module_server: Server) -> Server:
    """The module's shared server: each test installs under a name of its own."""
    return module_server


@pytest.fixture
def unique(tmp_path: Path) -> Iterator[str]:
    name = f"shtools{uuid.uuid4().hex[:8]}"
    yield name
    docker("rmi", "-f", f"stackhub-test/{name}:1", f"stackhub-test/{name}-free:1", check=False)
    docker("volume", "rm", "-f", f"{name}-vol", check=False)
    docker("network", "rm", f"{name}-net", check=False)


def build_image(tag: str, tmp_path: Path) -> None:
    """A distinct image id (a label on the test image), no network needed."""
    folder = tmp_path / f"build-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    (folder / "Dockerfile").write_text(f"FROM {IMAGE}\nLABEL io.test.tag={tag}\n")
    subprocess.run(["docker", "build", "-q", "-t", tag, str(folder)], check=True,
                   capture_output=True, timeout=120, env={**os.environ, "DOCKER_BUILDKIT": "0"})


def test_engine_view_protects_instances_and_prunes_with_a_preview(
        server: Server, unique: str, tmp_path: Path) -> None:
    used = f"stackhub-test/{unique}:1"
    free = f"stackhub-test/{unique}-free:1"
    build_image(used, tmp_path)
    build_image(free, tmp_path)
    install(server, unique, used)
    docker("volume", "create", f"{unique}-vol")
    docker("network", "create", f"{unique}-net")

    images = server.api("GET", "/api/system/images").json()
    mine = next(i for i in images if used in i["tags"])
    assert mine["instances"] == [unique] and mine["in_use"] and not mine["dangling"]
    spare = next(i for i in images if free in i["tags"])
    assert spare["instances"] == [] and not spare["in_use"]

    refused = server.api("DELETE", f"/api/system/images/{used}")
    assert refused.status_code == 409, refused.text
    assert unique in refused.json()["error"]["message"]
    # even with no container left, the instance's project still uses the image
    project = f"stackhub-{unique}"
    docker("compose", "-p", project, "down", "--timeout", "1", check=False)
    assert docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"
                  ).stdout.strip() == ""
    refused = server.api("DELETE", f"/api/system/images/{used}")
    assert refused.status_code == 409, refused.text
    assert docker("image", "inspect", used, check=False).returncode == 0

    volumes = server.api("GET", "/api/system/volumes").json()
    cache = next(v for v in volumes if v["name"] == f"{project}_cache")
    assert cache["instance"] == unique and cache["in_use"] and not cache["orphaned"]
    assert server.api("DELETE", f"/api/system/volumes/{project}_cache").status_code == 409
    spare_volume = next(v for v in volumes if v["name"] == f"{unique}-vol")
    assert not spare_volume["in_use"] and spare_volume["size"] is not None
    networks = server.api("GET", "/api/system/networks").json()
    assert not next(n for n in networks if n["name"] == f"{unique}-net")["in_use"]
    assert next(n for n in networks if n["name"] == "bridge")["in_use"]

    body = {"images": True, "all_images": True, "volumes": True, "networks": True}
    preview = server.api("POST", "/api/system/prune", json=body).json()
    assert preview["dry_run"]
    names = {item["name"] for item in preview["items"]}
    assert {free, f"{unique}-vol", f"{unique}-net"} <= names
    assert used not in names and f"{project}_cache" not in names and "bridge" not in names
    assert preview["space"] >= sum(i["size"] for i in preview["items"] if i["name"] == free)
    assert docker("volume", "inspect", f"{unique}-vol", check=False).returncode == 0  # preview
    ours = [i["id"] for i in preview["items"]
            if i["name"] in (free, f"{unique}-vol", f"{unique}-net")]
    done = server.api("POST", "/api/system/prune",
                      json={**body, "dry_run": False, "only": [*ours, used]}).json()
    assert {i["name"] for i in done["items"] if i["removed"]} == {free, f"{unique}-vol",
                                                                 f"{unique}-net"}
    assert docker("image", "inspect", free, check=False).returncode != 0
    assert docker("image", "inspect", used, check=False).returncode == 0  # only= cannot force
    assert docker("volume", "inspect", f"{unique}-vol", check=False).returncode != 0

    cli = server.cli("engine", "images", "--json")
    assert cli.returncode == 0, cli.stderr
    assert any(used in i["tags"] for i in json.loads(cli.stdout))
    cli = server.cli("engine", "prune", "--dry-run", "--json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["dry_run"] is True
    cli = server.cli("engine", "rm", "image", used)
    assert cli.returncode != 0 and "in use" in cli.stderr


def test_files_round_trip_through_the_cli_and_the_container(
        server: Server, unique: str, tmp_path: Path) -> None:
    install(server, unique, IMAGE)
    source = tmp_path / "hello.txt"
    source.write_text("hello from the file manager\n")
    put = server.cli("files", "put", str(source), f"{unique}:data/")
    assert put.returncode == 0, put.stderr
    # the app sees it through its bind mount, owned by its PUID:PGID
    project = f"stackhub-{unique}"
    seen = docker("compose", "-p", project, "exec", "-T", "web", "cat", "/data/hello.txt")
    assert seen.stdout == "hello from the file manager\n"
    owner = docker("compose", "-p", project, "exec", "-T", "web", "stat", "-c", "%u:%g",
                   "/data/hello.txt").stdout.strip()
    assert owner == "1000:1000"
    listed = server.cli("files", "ls", f"{unique}:data", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = {e["name"]: e for e in json.loads(listed.stdout)["entries"]}
    assert entries["hello.txt"]["size"] == 28 and entries["hello.txt"]["kind"] == "file"
    refused = server.cli("files", "put", str(source), f"{unique}:data/hello.txt")
    assert refused.returncode != 0 and "already exists" in refused.stderr

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 * 1024 * 1024 + 17))
    assert server.cli("files", "put", str(big), f"{unique}:data").returncode == 0
    back = tmp_path / "back"
    back.mkdir()
    got = server.cli("files", "get", f"{unique}:data/big.bin", str(back))
    assert got.returncode == 0, got.stderr
    assert (back / "big.bin").read_bytes() == big.read_bytes()
    ranged = httpx.get(f"{server.url}/api/instances/{unique}/files/download",
                       params={"path": "data/big.bin"}, timeout=60,
                       headers={"Range": "bytes=10-19",
                                "Authorization": f"Bearer {server.token}"})
    assert ranged.status_code == 206 and ranged.content == big.read_bytes()[10:20]
    assert ranged.headers["content-range"] == f"bytes 10-19/{big.stat().st_size}"

    os.symlink("/etc", server.data_dir / "appdata" / unique / "data" / "etc-link")
    got = server.cli("files", "get", f"{unique}:data", str(back))
    assert got.returncode == 0, got.stderr
    names = zipfile.ZipFile(io.BytesIO((back / "data.zip").read_bytes())).namelist()
    assert sorted(names) == ["big.bin", "hello.txt"]
    bad = server.cli("files", "get", f"{unique}:data/etc-link/passwd", str(back))
    assert bad.returncode != 0 and "link" in bad.stderr


def test_admins_browse_a_named_volume(server: Server, unique: str) -> None:
    """A local volume's folder through the same confined routes (admins only)."""
    volume = f"{unique}-vol"
    docker("volume", "create", volume)
    docker("run", "--rm", "--network", "none", "-v", f"{volume}:/v", IMAGE, "sh", "-c",
           "echo inside > /v/file.txt && mkdir /v/dir && ln -s /etc /v/etc-link")
    listed = server.api("GET", f"/api/system/volumes/{volume}/files")
    assert listed.status_code == 200, listed.text
    entries = {e["name"]: e for e in listed.json()["entries"]}
    assert entries["file.txt"]["kind"] == "file" and entries["etc-link"]["kind"] == "link"
    text = server.api("GET", f"/api/system/volumes/{volume}/files/text",
                      params={"path": "file.txt"})
    assert text.json()["content"] == "inside\n"
    assert server.api("GET", f"/api/system/volumes/{volume}/files/text",
                      params={"path": "etc-link/passwd"}).status_code == 422
    assert server.api("GET", "/api/system/volumes/no-such-volume-x/files").status_code == 404
