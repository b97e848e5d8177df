"""The gateway dialling apps' containers (the default) or their published ports, end to end.

Real Caddy and Docker: the route of an app dials its main container on its project network
(no docker-proxy), inside the subnet StackHub gave that network and through that network's own
bridge on the host, follows the container when it restarts, and shows the stopped page;
``STACKHUB_GATEWAY_DIAL=port`` keeps the published port.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from stackhub.adapters import caddy, firewall
from tests.integration.conftest import Server
from tests.integration.gateway_env import (
    AcmeLab,
    eventually,
    fetch,
    gateway_server,
    install_web,
    internal_root,
    running_lab,
)

pytestmark = pytest.mark.integration
BASE = "dial.lan"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeLab]:
    """Pebble and its DNS (for the lab's ports and settings; the base uses the internal CA)."""
    yield from running_lab(tmp_path_factory)


def test_the_port_setting_keeps_the_published_port(lab: AcmeLab, tmp_path: Path) -> None:
    env = {**lab.env(), "STACKHUB_GATEWAY_DIAL": "port"}
    # runs before the module's server (same ports)
    with gateway_server(tmp_path, env, BASE, lambda server: install_web(server, "plain")) as srv:
        port = srv.api("GET", "/api/instances/plain").json()["ports"][0]["host_port"]
        eventually(lambda: assert_dial(srv, f"127.0.0.1:{port}", "plain"), timeout=30)
        root = internal_root(srv, tmp_path)
        eventually(lambda: assert_served(srv, lab, root, "plain"), timeout=30)


@pytest.fixture(scope="module")
def gw(lab: AcmeLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the default dial, instance web, base dial.lan."""
    with gateway_server(tmp_path_factory.mktemp("gateway-dial"), lab.env(), BASE) as srv:
        yield srv


def dialled(srv: Server, name: str = "web") -> str:
    """Return the upstream Caddy dials for <name>.<base> (read from Caddy's admin socket)."""
    transport = httpx.HTTPTransport(uds=str(srv.data_dir / "gateway" / "admin.sock"))
    with httpx.Client(transport=transport, base_url="http://caddy", headers={"Host": ""},
                      timeout=10) as client:
        route = client.get(f"/id/stackhub-app-{name}").json()
    handler = route["handle"][0]
    assert handler["handler"] == "subroute", route  # not (yet) a page for a stopped app
    proxy = handler["routes"][-1]["handle"][0]
    assert proxy["handler"] == "reverse_proxy", route
    return str(proxy["upstreams"][0]["dial"])


def container_address(srv: Server) -> tuple[str, str]:
    """Return (container id, IP on its project network) of web's container."""
    listed = subprocess.run(["docker", "ps", "-q", "--filter", "label=com.docker.compose.project"
                             "=stackhub-web"], capture_output=True, text=True, check=True)
    ident = listed.stdout.split()[0]
    address = subprocess.run(
        ["docker", "inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}"
         "{{$k}}={{$v.IPAddress}} {{end}}", ident], capture_output=True, text=True,
        check=True).stdout.split()
    found = dict(item.split("=", 1) for item in address)
    return ident, found["stackhub-web_default"]


def test_the_route_dials_the_container_and_follows_it(gw: Server, lab: AcmeLab,
                                                     tmp_path: Path) -> None:
    root = internal_root(gw, tmp_path)
    ident, address = container_address(gw)
    eventually(lambda: assert_dial(gw, f"{address}:80"), timeout=30)
    # the address is inside the block StackHub gave the network, behind its own bridge
    network = json.loads(subprocess.run(["docker", "network", "inspect", "stackhub-web_default"],
                                        capture_output=True, text=True, check=True).stdout)[0]
    subnet = ipaddress.ip_network(network["IPAM"]["Config"][0]["Subnet"])
    assert ipaddress.ip_address(address) in subnet and str(subnet).startswith("10.231."), subnet
    route = subprocess.run(["ip", "-4", "route", "show", str(subnet)], capture_output=True,
                           text=True, check=True).stdout
    assert f"dev br-{network['Id'][:12]}" in route, route
    served = fetch(lab, f"web.{BASE}", root)
    assert (served.status_code, served.text.strip()) == (200, "hello from web")
    # the container takes another address: a second container joins its network while it
    # is stopped (taking the next free address), so the restart gets a new one
    subprocess.run(["docker", "stop", "-t", "1", ident], check=True, capture_output=True)
    holder = subprocess.run(["docker", "run", "-d", "--rm", "--network", "stackhub-web_default",
                             "stackhub-test/web:1", "sleep", "300"],
                            capture_output=True, text=True, check=True)
    try:
        subprocess.run(["docker", "start", ident], check=True, capture_output=True)
        _, moved = container_address(gw)
        assert moved != address
        eventually(lambda: assert_dial(gw, f"{moved}:80"), timeout=30)
        eventually(lambda: assert_served(gw, lab, root), timeout=30)
    finally:
        subprocess.run(["docker", "rm", "-f", holder.stdout.strip()], capture_output=True,
                       check=False)
    assert gw.cli("app", "stop", "web").returncode == 0

    def stopped() -> None:
        page = fetch(lab, f"web.{BASE}", root)
        assert page.status_code == 503 and "web is stopped" in page.text

    eventually(stopped, timeout=30)


def assert_dial(srv: Server, expected: str, name: str = "web") -> None:
    assert dialled(srv, name) == expected


def assert_served(srv: Server, lab: AcmeLab, root: Path, name: str = "web") -> None:
    answer = fetch(lab, f"{name}.{BASE}", root)
    assert (answer.status_code, answer.text.strip()) == (200, f"hello from {name}")



class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"fallback\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Stay quiet."""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_stale_container_address_falls_back_to_the_published_port(tmp_path: Path) -> None:
    """Real Caddy: the first upstream refuses, the same request is served by the fallback."""
    live = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    # a connection Caddy abandons (stopped) after select() saw it would block a blocking
    # accept() for ever, and shutdown() with it: accept without blocking
    live.socket.setblocking(False)
    threading.Thread(target=live.serve_forever, daemon=True).start()
    dead, https, http = closed_port(), closed_port(), closed_port()
    host = "stale.dial.lan"

    async def scenario() -> None:
        gateway = caddy.CaddyGateway(tmp_path / "gateway")

        async def reapply() -> None:
            return None

        await gateway.start(reapply)
        try:
            route = caddy.Route(id="app-stale", hosts=(host,), upstream=f"127.0.0.1:{dead}",
                                fallback=f"127.0.0.1:{live.server_address[1]}")
            await gateway.load(caddy.render(caddy.GatewaySpec(
                admin=gateway.listen, http_port=http, https_port=https,
                storage=gateway.storage, routes=(route,), internal=(host,))))
            answers = []
            async with httpx.AsyncClient(verify=False, timeout=10) as client:
                for _ in range(50):  # the internal certificate is being issued
                    try:
                        answers.append(await client.get(
                            f"https://127.0.0.1:{https}/", headers={"Host": host},
                            extensions={"sni_hostname": host}))
                        break
                    except httpx.HTTPError:
                        await asyncio.sleep(0.1)
                for _ in range(3):
                    answers.append(await client.get(f"https://127.0.0.1:{https}/",
                                                    headers={"Host": host},
                                                    extensions={"sni_hostname": host}))
            assert [(a.status_code, a.text) for a in answers] == [(200, "fallback\n")] * 4
            transport = httpx.AsyncHTTPTransport(uds=gateway.listen.removeprefix("unix/"))
            async with httpx.AsyncClient(transport=transport, base_url="http://caddy",
                                         headers={"Host": ""}, timeout=10) as admin:
                upstreams = {u["address"]: u for u in
                             (await admin.get("/reverse_proxy/upstreams")).json()}
            # the refused address failed once and then rested: the later requests went
            # straight to the port
            assert upstreams[f"127.0.0.1:{dead}"]["fails"] == 1, upstreams
        finally:
            await gateway.stop()

    try:
        asyncio.run(scenario())
    finally:
        live.shutdown()


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=30)


def test_other_machines_reach_app_containers_only_through_published_ports(gw: Server) -> None:
    """Docker accepts forwarded packets addressed straight to a published container port; a
    machine on the box's link that routes StackHub's pool through it must not reach the app
    that way (around the gateway and its sign-in). The other machine: a network namespace."""
    started = gw.cli("app", "start", "web")  # the test before stopped it
    assert started.returncode == 0, started.stderr + started.stdout
    _, address = container_address(gw)
    port = gw.api("GET", "/api/instances/web").json()["ports"][0]["host_port"]
    pool = ipaddress.ip_network("10.231.0.0/16")
    tag = f"{os.getpid() % 100000}"
    ns, outer, inner = f"shlan{tag}", f"shv{tag}a", f"shv{tag}b"
    box, other = "192.168.231.1", "192.168.231.2"
    _sh("ip", "netns", "add", ns)
    try:
        _sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        _sh("ip", "link", "set", inner, "netns", ns)
        _sh("ip", "addr", "add", f"{box}/30", "dev", outer)
        _sh("ip", "link", "set", outer, "up")
        _sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{other}/30", "dev", inner)
        _sh("ip", "netns", "exec", ns, "ip", "link", "set", inner, "up")
        _sh("ip", "netns", "exec", ns, "ip", "route", "add", str(pool), "via", box)

        def fetch_from_other(url: str) -> subprocess.CompletedProcess[str]:
            return _sh("ip", "netns", "exec", ns, "busybox", "timeout", "3", "busybox", "wget",
                       "-q", "-O", "-", url, check=False)

        published = fetch_from_other(f"http://{box}:{port}/")
        assert published.returncode == 0 and published.stdout.strip() == "hello from web", \
            published.stderr
        direct = fetch_from_other(f"http://{address}:80/")
        assert direct.returncode != 0, direct.stdout  # StackHub's rule dropped it
        # without the rule, Docker lets it through: what the rule is for
        drop = ["iptables", "-w", "10", "-D", firewall.CHAIN, *firewall.rule(pool)]
        _sh(*drop)
        try:
            opened = fetch_from_other(f"http://{address}:80/")
            assert opened.returncode == 0 and opened.stdout.strip() == "hello from web"
        finally:
            _sh("iptables", "-w", "10", "-I", firewall.CHAIN, "1", *firewall.rule(pool))
    finally:
        _sh("ip", "netns", "del", ns, check=False)
        _sh("ip", "link", "del", outer, check=False)
