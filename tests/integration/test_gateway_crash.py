"""Caddy dying during a change: StackHub starts it again and the change still reaches it.

One server with the gateway on high ports, the web-app fixture ``web`` and the LAN base
``crash.lan`` (internal CA, no ACME lab needed). The change is the app's sign-in (`app
protect`): its effect shows over HTTPS (the gateway sends an anonymous request to the
console's sign-in, or lets it through) and a half-applied state would expose the app.
Requests go to 127.0.0.1 with the name as SNI and Host (curl's ``--resolve``).
"""

from __future__ import annotations

import contextlib
import json
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.integration.conftest import STACKHUB, Server, free_port
from tests.integration.gateway_env import eventually, gateway_server, internal_root

pytestmark = pytest.mark.integration
BASE = "crash.lan"
APP = f"web.{BASE}"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the gateway on free high ports, the app ``web``, base crash.lan."""
    env = {"STACKHUB_GATEWAY": "1", "STACKHUB_HTTP_PORT": str(free_port()),
           "STACKHUB_HTTPS_PORT": str(free_port()), "STACKHUB_PUBLIC_ADDRESS": "127.0.0.1"}
    with gateway_server(tmp_path_factory.mktemp("gateway-crash"), env, BASE) as srv:
        yield srv


@pytest.fixture(scope="module")
def root(gw: Server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The internal CA's root certificate, trusted for the LAN names."""
    return internal_root(gw, tmp_path_factory.mktemp("ca"))


def anonymous(gw: Server, root: Path) -> httpx.Response:
    """GET https://web.crash.lan/ through the gateway without signing in (no redirects)."""
    context = ssl.create_default_context(cafile=str(root))
    with httpx.Client(verify=context, timeout=20) as client:
        return client.get(f"https://127.0.0.1:{gw.extra_env['STACKHUB_HTTPS_PORT']}/",
                          headers={"Host": APP}, extensions={"sni_hostname": APP})


def shows(gw: Server, root: Path, protected: bool) -> None:
    """Assert the gateway serves the app as `protected` says (sign-in, or the app itself)."""
    answer = anonymous(gw, root)
    if protected:
        assert answer.status_code == 302, answer.text
        assert "/api/auth/gateway?rd=" in answer.headers["location"]
    else:
        assert (answer.status_code, answer.text.strip()) == (200, "hello from web")


def caddy(gw: Server) -> psutil.Process:
    """Return the server's one Caddy child."""
    assert gw.proc is not None
    found = []
    for proc in psutil.Process(gw.proc.pid).children(recursive=True):
        try:  # compose runs of the server come and go meanwhile
            if proc.name() == "caddy" and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    assert len(found) == 1, found
    return found[0]


def gateway(gw: Server) -> dict[str, Any]:
    answer = gw.api("GET", "/api/gateway")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def protected(gw: Server) -> bool:
    """Return what the database says: is web behind the sign-in?"""
    return bool(gw.api("GET", "/api/instances/web/protection").json()["protected"])


def loading(gw: Server) -> None:
    """Assert a protect operation runs its route step (the one loading the gateway's config)."""
    ops = gw.api("GET", "/api/operations", params={"kind": "protect"}).json()["items"]
    assert ops and ops[0]["state"] == "running", ops
    steps = gw.api("GET", f"/api/operations/{ops[0]['id']}").json()["steps"]
    assert [s["name"] for s in steps] == ["route"], steps


def agreeing(gw: Server, root: Path, restarts: int) -> None:
    """Assert Caddy was started again, is the only one, and serves what the database says."""
    state = gateway(gw)
    assert state["restarts"] > restarts and state["running"] and state["error"] is None, state
    caddy(gw)
    shows(gw, root, protected(gw))


def test_caddy_killed_while_a_change_loads_comes_back_with_the_change(
        gw: Server, root: Path) -> None:
    """Caddy frozen (SIGSTOP) so that `app protect`'s load waits on it, then killed.

    The load is in flight when Caddy dies: StackHub starts it again and the command ends
    well, with the sign-in in force (the re-applied config carries it)."""
    eventually(lambda: shows(gw, root, protected=False))
    restarts = gateway(gw)["restarts"]
    frozen = caddy(gw)
    frozen.suspend()
    command = subprocess.Popen([*STACKHUB, "app", "protect", "web", "--json"], env=gw.env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        eventually(lambda: loading(gw), timeout=30)
        time.sleep(1.0)  # the request reaches the frozen Caddy's admin socket
        assert command.poll() is None  # still waiting for Caddy's answer
    finally:
        frozen.kill()  # SIGKILL while stopped: dies at once, the load unanswered
    started = time.monotonic()
    out, err = command.communicate(timeout=60)
    took = time.monotonic() - started
    assert command.returncode == 0, err + out
    assert "Traceback" not in err
    read = json.loads(out)
    assert read["protected"] is True
    op = gw.api("GET", f"/api/operations/{read['operation']}").json()
    assert op["state"] == "succeeded", op
    assert took < 30  # Caddy's start (seconds), not the admin client's 30 s load timeout
    assert protected(gw) is True
    eventually(lambda: agreeing(gw, root, restarts), timeout=20)
    assert caddy(gw).pid != frozen.pid


def test_a_change_made_while_caddy_is_down_is_served_once_it_is_back(
        gw: Server, root: Path) -> None:
    """Caddy killed, and the change asked for at once (before StackHub started it again)."""
    eventually(lambda: caddy(gw))
    wanted = not protected(gw)
    restarts = gateway(gw)["restarts"]
    killed = caddy(gw)
    killed.kill()
    answer = gw.api("PUT", "/api/instances/web/protection", json={"protected": wanted})
    assert answer.status_code == 200, answer.text
    assert answer.json()["protected"] is wanted
    assert protected(gw) is wanted
    eventually(lambda: agreeing(gw, root, restarts), timeout=20)
    shows(gw, root, wanted)
    assert caddy(gw).pid != killed.pid


def test_a_hung_caddy_is_killed_and_started_again(gw: Server, root: Path) -> None:
    """Caddy alive but frozen (SIGSTOP), its admin API silent: StackHub kills it after a few
    missed checks and starts a new one, which serves the app again."""
    eventually(lambda: agreeing(gw, root, -1))
    restarts = gateway(gw)["restarts"]
    frozen = caddy(gw)
    frozen.suspend()
    try:
        eventually(lambda: agreeing(gw, root, restarts), timeout=40)
        assert caddy(gw).pid != frozen.pid
        assert not frozen.is_running()
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            frozen.kill()
            frozen.resume()
