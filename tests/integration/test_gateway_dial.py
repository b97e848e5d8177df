"""The gateway dialling apps' containers (STACKHUB_GATEWAY_DIAL=container), end to end.

Real Caddy and Docker: the route of an app dials its main container on its project network
(no docker-proxy), follows the container when it restarts, and shows the stopped page.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Server
from tests.integration.gateway_env import AcmeLab, eventually, fetch, install_web, running_lab

pytestmark = pytest.mark.integration
BASE = "dial.lan"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeLab]:
    """Pebble and its DNS (for the lab's ports and settings; the base uses the internal CA)."""
    yield from running_lab(tmp_path_factory)


@pytest.fixture(scope="module")
def gw(lab: AcmeLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server dialling containers, instance web, base dial.lan."""
    srv = Server(tmp_path_factory.mktemp("gateway-dial") / "data",
                 extra_env={**lab.env(), "STACKHUB_GATEWAY_DIAL": "container"})
    srv.start()
    try:
        install_web(srv)
        result = srv.cli("domain", "base", BASE)
        assert result.returncode == 0, result.stderr + result.stdout
        yield srv
    finally:
        srv.stop()
        srv.cleanup_engine()


def dialled(srv: Server) -> str:
    """Return the upstream Caddy dials for web.<base> (read from Caddy's admin socket)."""
    transport = httpx.HTTPTransport(uds=str(srv.data_dir / "gateway" / "admin.sock"))
    with httpx.Client(transport=transport, base_url="http://caddy", headers={"Host": ""},
                      timeout=10) as client:
        route = client.get("/id/stackhub-app-web").json()
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
    root = tmp_path / "ca.pem"
    answer = gw.api("GET", "/api/domains/ca")
    assert answer.status_code == 200, answer.text
    root.write_text(answer.text)
    ident, address = container_address(gw)
    eventually(lambda: assert_dial(gw, f"{address}:80"), timeout=30)
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


def assert_dial(srv: Server, expected: str) -> None:
    assert dialled(srv) == expected


def assert_served(srv: Server, lab: AcmeLab, root: Path) -> None:
    answer = fetch(lab, f"web.{BASE}", root)
    assert (answer.status_code, answer.text.strip()) == (200, "hello from web")
