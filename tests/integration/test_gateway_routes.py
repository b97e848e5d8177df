"""App routes through the gateway: a websocket echo, and an app living under its own path prefix.

One server for the module with the LAN base ``home.lan`` (internal CA) and one app: a python3
stdlib server (in StackHub's store-script sandbox image, which has python3) that answers only
under ``/app/`` (its manifest's main path) and echoes websocket messages at ``/app/echo`` (a
minimal RFC 6455 handler). Requests go to 127.0.0.1 with the app's automatic name as SNI and
Host.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import WebSocketException

from stackhub.adapters import sandbox
from tests.integration.conftest import Server, free_port
from tests.integration.gateway_env import (
    eventually,
    gateway_server,
    internal_root,
)

pytestmark = pytest.mark.integration
BASE = "home.lan"
APP = "wsecho"  # unique: compose projects are named after instances
PREFIX = "/app/"

# No "$" anywhere: compose would interpolate it.
ECHO = r'''
import asyncio, base64, hashlib, struct
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
async def frame(reader):
    head = await reader.readexactly(2)
    opcode, size = head[0] & 15, head[1] & 127
    if size == 126:
        size = struct.unpack("!H", await reader.readexactly(2))[0]
    elif size == 127:
        size = struct.unpack("!Q", await reader.readexactly(8))[0]
    mask = await reader.readexactly(4) if head[1] & 128 else bytes(4)
    data = await reader.readexactly(size)
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))
def pack(opcode, data):
    size = len(data)
    head = bytes([128 | opcode])
    if size < 126:
        return head + bytes([size]) + data
    if size < 65536:
        return head + bytes([126]) + struct.pack("!H", size) + data
    return head + bytes([127]) + struct.pack("!Q", size) + data
async def handle(reader, writer):
    try:
        request = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        path = request[0].split(" ")[1]
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in request[1:] if line)}
        if path == "/app/echo" and headers.get("upgrade", "").lower() == "websocket":
            key = headers["sec-websocket-key"].encode()
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
            writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept +
                          "\r\n\r\n").encode())
            while True:
                opcode, data = await frame(reader)
                if opcode == 8:
                    writer.write(pack(8, data[:2]))
                    break
                if opcode == 9:
                    writer.write(pack(10, data))
                elif opcode in (1, 2):
                    writer.write(pack(opcode, data))
                await writer.drain()
        else:
            ok = path.startswith("/app/")
            body = ("prefixed app at " + path if ok else "not here").encode()
            status = "200 OK" if ok else "404 Not Found"
            writer.write(("HTTP/1.1 " + status + "\r\nContent-Type: text/plain\r\n"
                          "Content-Length: " + str(len(body)) + "\r\nConnection: close\r\n\r\n"
                          ).encode() + body)
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, IndexError, KeyError):
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", 8080)
    async with server:
        await server.serve_forever()
asyncio.run(main())
'''

MANIFEST = f"""format: stackhub/v1
id: ws-echo
name: Websocket echo
version: "1.0.0"
title: {{en: Websocket echo, zh-CN: WebSocket 回显}}
tagline: {{en: Echoes websocket messages under /app/, zh-CN: 在 /app/ 下回显 WebSocket 消息}}
category: [utilities]
main: {{service: echo, port: 8080, path: {PREFIX}}}
parameters:
  - name: WEB_PORT
    type: port
    default: 18180
    label: {{en: Web port}}
"""


def compose(image: str) -> str:
    """The app's compose file: the echo server in `image`."""
    return (f"services:\n  echo:\n    image: {image}\n"
            f"    command: [\"python3\", \"-u\", \"-c\", {json.dumps(ECHO)}]\n"
            "    ports: [\"${WEB_PORT}:8080\"]\n    stop_grace_period: 1s\n")


def install_echo(srv: Server, image: str) -> None:
    """Install the echo app (its server in `image`) and wait until it succeeded."""
    answer = srv.api("POST", "/api/instances", json={
        "source": {"kind": "app", "manifest": MANIFEST, "compose": compose(image)},
        "name": APP, "values": {"WEB_PORT": str(free_port())}})
    assert answer.status_code == 202, answer.text
    op = srv.wait_operation(str(answer.json()["operation"]["id"]))
    assert op["state"] == "succeeded", op


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    """A server with the gateway on high ports, the echo app and base home.lan."""
    image = sandbox.image_ref()
    present = subprocess.run(["docker", "image", "inspect", image], capture_output=True)
    if present.returncode != 0:
        pytest.fail(f"{image} is missing (scripts/test-images builds it)")
    https = free_port()
    env = {"STACKHUB_GATEWAY": "1", "STACKHUB_HTTP_PORT": str(free_port()),
           "STACKHUB_HTTPS_PORT": str(https), "STACKHUB_PUBLIC_ADDRESS": "127.0.0.1"}
    with gateway_server(tmp_path_factory.mktemp("routes"), env, BASE,
                        lambda server: install_echo(server, image)) as srv:
        yield srv, https


@pytest.fixture(scope="module")
def root(gw: tuple[Server, int], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The internal CA's root, to trust for the LAN names."""
    return internal_root(gw[0], tmp_path_factory.mktemp("ca"))


def get(https: int, root: Path, path: str) -> httpx.Response:
    """GET https://<app>.<base>/path through the gateway on 127.0.0.1, without redirects."""
    host = f"{APP}.{BASE}"
    context = ssl.create_default_context(cafile=str(root))
    with httpx.Client(verify=context, timeout=30) as client:
        return client.get(f"https://127.0.0.1:{https}{path}", headers={"Host": host},
                          extensions={"sni_hostname": host})


def test_an_app_is_served_under_its_own_path_prefix(gw: tuple[Server, int], root: Path) -> None:
    _, https = gw

    def served() -> None:
        answer = get(https, root, f"{PREFIX}page")
        assert (answer.status_code, answer.text) == (200, f"prefixed app at {PREFIX}page")

    eventually(served, timeout=30)  # the container's python starts after the install ends
    top = get(https, root, "/")  # the bare name goes to the app's prefix
    assert top.status_code == 302 and top.headers["location"] == PREFIX
    assert get(https, root, PREFIX).text == f"prefixed app at {PREFIX}"
    # the prefix is passed on as it is (the app expects it), not stripped
    assert get(https, root, "/elsewhere").status_code == 404


def test_a_websocket_echo_through_an_app_route(gw: tuple[Server, int], root: Path) -> None:
    """asyncio's client under a 30 s deadline (the sync one can hang; test_gateway.py)."""
    _, https = gw
    eventually(lambda: get(https, root, PREFIX).raise_for_status(), timeout=30)

    async def echo() -> list[str | bytes]:
        context = ssl.create_default_context(cafile=str(root))
        async with ws_connect(f"wss://{APP}.{BASE}:{https}{PREFIX}echo", ssl=context,
                              host="127.0.0.1", port=https, open_timeout=10,
                              close_timeout=5) as ws:
            got: list[str | bytes] = []
            for message in ("hello through the gateway", b"\x00\x01binary", "x" * 70000):
                await ws.send(message)
                got.append(await asyncio.wait_for(ws.recv(), 10))
            return got

    for attempt in range(2):  # a connection accepted during a load can be dropped once
        try:
            got = asyncio.run(asyncio.wait_for(echo(), 30))
            break
        except (OSError, TimeoutError, WebSocketException):
            if attempt == 1:
                raise
            time.sleep(1)
    assert got == ["hello through the gateway", b"\x00\x01binary", "x" * 70000]
