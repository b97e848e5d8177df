"""Dialling an app's main container instead of its published port (STACKHUB_GATEWAY_DIAL)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stackhub.adapters.engine import ContainerDetailRecord, ContainerInfo, NetworkAttachment
from stackhub.errors import GatewayUnavailable
from stackhub.events import Event
from stackhub.proxy import dial
from stackhub.proxy.service import GatewaySettings, ProxyService
from stackhub.services import Services
from tests.unit.proxy.test_service import FakeGateway, FakeResolver, install, routes, upstream

NET_ID = "0123456789abcdef" * 4
OWNED = {"default": ["10.1.0.0/26"]}
LINKS: dial.Links = {"br-0123456789ab": [ipaddress.IPv4Network("10.1.0.0/26")]}


def detail(state: str = "running", network_id: str = NET_ID,
           **networks: str) -> ContainerDetailRecord:
    return ContainerDetailRecord(id="c1", name="web-1", state=state, networks=[
        NetworkAttachment(name=name, ip_address=ip, network_id=network_id)
        for name, ip in networks.items()])


def box(service: str, state: str, name: str) -> ContainerInfo:
    return ContainerInfo(id=name, name=name, service=service, state=state)


def address(record: dial.Attached, project: str | None = "stackhub_web", *,
            owned: dict[str, list[str]] = OWNED, links: dial.Links = LINKS) -> str | None:
    return dial.container_address(record, project, 80, owned=owned, links=links)[0]


def test_only_a_provably_own_and_reachable_address_is_dialled() -> None:
    assert address(detail(stackhub_web_default="10.1.0.2")) == "10.1.0.2:80"
    listed = ContainerInfo(id="c1", name="web-1", state="running", networks=[
        NetworkAttachment(name="stackhub_web_default", ip_address="10.1.0.2", network_id=NET_ID)])
    assert address(listed) == "10.1.0.2:80"  # the engine's list carries the same facts
    assert "networks" not in listed.model_dump()  # never in events or answers
    # another project's or a shared network, the default bridge, the host: never
    assert address(detail(shared="10.1.0.3", bridge="172.17.0.2",
                          stackhub_webx_default="10.1.0.4")) is None
    assert address(detail(stackhub_web_default="")) is None
    assert address(detail(stackhub_web_default="fd00::2")) is None
    assert address(detail("exited", stackhub_web_default="10.1.0.2")) is None
    assert address(detail(stackhub_web_default="10.1.0.2"), None) is None
    # outside the subnet StackHub gave the network (or an instance without subnets)
    found, why = dial.container_address(detail(stackhub_web_default="10.1.0.70"),
                                        "stackhub_web", 80, owned=OWNED, links=LINKS)
    assert found is None and "not in a subnet StackHub gave" in why
    assert address(detail(stackhub_web_default="10.1.0.2"), owned={}) is None
    assert address(detail(stackhub_web_default="10.1.0.2"),
                   owned={"backend": ["10.1.0.0/26"]}) is None
    # the host does not reach it through that network's bridge: a rootless engine (bridges in
    # another namespace), a remote one, another bridge's route, a custom bridge name
    found, why = dial.container_address(detail(stackhub_web_default="10.1.0.2"),
                                        "stackhub_web", 80, owned=OWNED, links={})
    assert found is None and "rootless or remote" in why
    assert address(detail(stackhub_web_default="10.1.0.2"),
                   links={"br-ffffffffffff": [ipaddress.IPv4Network("10.1.0.0/26")]}) is None
    assert address(detail(network_id="", stackhub_web_default="10.1.0.2")) is None
    assert address(detail(stackhub_web_default="10.1.0.2"),
                   links={"br-0123456789ab": [ipaddress.IPv4Network("10.2.0.0/26")]}) is None


def test_only_routes_straight_onto_an_interface_count_as_links(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "br-0123456789ab\t0000E70A\t00000000\t0001\t0\t0\t0\tC0FFFFFF\t0\t0\t0\n"
        "eth0\t0000010A\t010200C0\t0003\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
        "br-down\t0000020A\t00000000\t0000\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
        "short\t0000030A\n")
    assert dial.host_links(table) == {
        "br-0123456789ab": [ipaddress.IPv4Network("10.231.0.0/26")]}
    assert dial.host_links(tmp_path / "missing") == {}
    assert dial.bridge(NET_ID) == "br-0123456789ab"


def test_the_running_main_container_is_preferred() -> None:
    found = dial.main_container([box("db", "running", "a"), box("web", "exited", "b"),
                                 box("web", "running", "c")], "web")
    assert found is not None and found.name == "c"
    assert dial.main_container([box("db", "running", "a")], "web") is None


def test_the_setting_defaults_to_the_container() -> None:
    assert GatewaySettings.from_env({}).dial == dial.CONTAINER
    assert GatewaySettings.from_env({"STACKHUB_GATEWAY_DIAL": "bogus"}).dial == dial.CONTAINER
    assert GatewaySettings.from_env({"STACKHUB_GATEWAY_DIAL": " Port "}).dial == dial.PORT
    assert GatewaySettings.from_env({"STACKHUB_GATEWAY_DIAL": "container"}).dial == \
        dial.CONTAINER


def listing(live: Services, monkeypatch: pytest.MonkeyPatch,
            address: dict[str, str]) -> list[str]:
    """List web's container at ``address["ip"]`` on its project network; return the list of
    containers inspected from now on."""
    original = live.apps.status.containers

    def containers(name: str) -> list[ContainerInfo]:
        return [c.model_copy(update={"networks": [
            NetworkAttachment(name="stackhub-web_default", ip_address=address["ip"],
                              network_id=NET_ID),
            NetworkAttachment(name="elsewhere", ip_address="10.231.0.3", network_id=NET_ID)]})
            if c.service == "web" else c for c in original(name)]

    asked: list[str] = []
    inspect = live.apps.status.engine.inspect_container

    def inspecting(ref: str) -> ContainerDetailRecord:
        asked.append(ref)
        return inspect(ref)

    monkeypatch.setattr(live.apps.status, "containers", containers)
    monkeypatch.setattr(live.apps.status.engine, "inspect_container", inspecting)
    return asked


class Settled:
    """Tells when the gateway service is idle: no event weighed, no load asked for or under way."""

    def __init__(self, svc: ProxyService) -> None:
        self.svc = svc
        self.busy = 0
        self.patch = pytest.MonkeyPatch()
        self.patch.setattr(svc, "_moved", self._counted(svc._moved))
        self.patch.setattr(svc, "apply", self._counted(svc.apply))

    def _counted(self, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def counted(*args: Any) -> Any:
            self.busy += 1
            try:
                return await method(*args)
            finally:
                self.busy -= 1
        return counted

    def idle(self) -> bool:
        state, sub = self.svc._state, self.svc._sub
        assert state is not None and sub is not None
        return not (self.busy or state.dirty.is_set() or not sub.queue.empty())

    async def wait(self) -> None:
        """Wait until the service is idle on three looks in a row (20 s at most)."""
        deadline = time.monotonic() + 20
        calm = 0
        while calm < 3:
            assert time.monotonic() < deadline, "the gateway service never went idle"
            await asyncio.sleep(0.02)
            calm = calm + 1 if self.idle() else 0


@pytest.fixture
def settled(live: Services) -> Iterator[Settled]:
    found = Settled(live.proxy)
    yield found
    found.patch.undo()


async def test_routes_follow_the_main_container_address(
        live: Services, monkeypatch: pytest.MonkeyPatch, settled: Settled) -> None:
    svc = live.proxy
    gateway = FakeGateway(live.paths.root / "gateway")
    svc.gateway = gateway
    svc.settings = GatewaySettings(http_port=8080, https_port=8443)  # the default dial
    svc._resolver = FakeResolver()
    live.paths.server_info.write_text(json.dumps({"url": "http://127.0.0.1:8420"}))
    assert live.apps.planner.subnets is not None
    live.apps.planner.subnets.routes = list  # the host's own routes play no part here
    address = {"ip": "10.231.0.2"}  # in the block the install gets (10.231.0.0/26)
    asked = listing(live, monkeypatch, address)
    monkeypatch.setattr(dial, "host_links", lambda: LINKS | {
        "br-0123456789ab": [ipaddress.IPv4Network("10.231.0.0/26")]})
    await svc.start()
    try:
        await install(live, "web", 18321)
        live.apps.status.refresh()
        project = live.apps.status.containers("web")[0].project
        assert project == "stackhub-web", project  # the network name the test relies on
        await svc.set_base("home.lan", "auto")
        assert upstream(routes(gateway.configs[-1])["stackhub-app-web"]) == "10.231.0.2:80"
        assert svc.dialled() == {"web": {"10.231.0.2"}}

        async def loads_with(dialled: str) -> dict[str, Any]:
            for _ in range(400):  # 20 s at most: ends as soon as it holds
                config = gateway.configs[-1]
                if upstream(routes(config)["stackhub-app-web"]) == dialled:
                    return config
                await asyncio.sleep(0.05)
            raise AssertionError(f"no load dialling {dialled}")

        await settled.wait()  # loads the install and the base asked for are done
        count = len(gateway.configs)
        live.bus.publish(Event("instance", "web", "containers", {}))  # same address
        await settled.wait()
        assert len(gateway.configs) == count  # an unchanged address loads nothing
        asked.clear()
        address["ip"] = "10.231.0.5"  # the container was recreated elsewhere
        live.bus.publish(Event("instance", "web", "containers", {}))
        await loads_with("10.231.0.5:80")
        assert asked == [], "the address comes from the container list, not an inspection"
        proxy = routes(gateway.configs[-1])["stackhub-app-web"]["handle"][0]["routes"][-1]
        assert [u["dial"] for u in proxy["handle"][0]["upstreams"]] == [
            "10.231.0.5:80", "127.0.0.1:18321"]  # the published port if the address is stale
        count = len(gateway.configs)
        address["ip"] = "10.9.0.5"  # outside web's block: not dialled, and not worth a load
        live.bus.publish(Event("instance", "web", "containers", {}))
        await settled.wait()
        assert len(gateway.configs) == count
        svc.schedule()  # the next load for any reason dials the published port alone
        config = await loads_with("127.0.0.1:18321")
        proxy = routes(config)["stackhub-app-web"]["handle"][0]["routes"][-1]["handle"][0]
        assert len(proxy["upstreams"]) == 1 and "load_balancing" not in proxy
        address["ip"] = "10.231.0.5"
        live.bus.publish(Event("instance", "web", "containers", {}))
        await loads_with("10.231.0.5:80")
        count = len(gateway.configs)
        monkeypatch.setattr(live.runner, "busy", lambda name: name == "web")
        address["ip"] = "10.231.0.6"  # moved while an operation runs: its end loads
        live.bus.publish(Event("instance", "web", "containers", {}))
        await settled.wait()
        assert len(gateway.configs) == count
        monkeypatch.undo()
        listing(live, monkeypatch, address)
        monkeypatch.setattr(dial, "host_links", lambda: {
            "br-0123456789ab": [ipaddress.IPv4Network("10.231.0.0/26")]})
        live.bus.publish(Event("instance", "web", "containers", {}))
        await loads_with("10.231.0.6:80")
        await live.apps.lifecycle("web", "stop")
        task = live.runner.tasks.get("web")
        if task is not None:
            await asyncio.wait_for(task, 30)
        for _ in range(400):
            page = routes(gateway.configs[-1])["stackhub-app-web"]["handle"][0]
            last = page["routes"][-1]["handle"][0] if page["handler"] == "subroute" else {}
            if last.get("status_code") == 503:  # the stopped page (English, the last choice)
                break
            await asyncio.sleep(0.05)
        assert page["routes"][-1]["handle"][0]["status_code"] == 503, (
            live.apps.get("web").status, page)
        assert svc.dialled() == {}
    finally:
        await svc.stop()


async def test_a_removed_app_stays_dialled_until_the_gateway_loads_without_it(
        live: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = live.proxy
    gateway = FakeGateway(live.paths.root / "gateway")
    svc.gateway = gateway
    svc.settings = GatewaySettings(http_port=8080, https_port=8443)
    svc._resolver = FakeResolver()
    live.paths.server_info.write_text(json.dumps({"url": "http://127.0.0.1:8420"}))
    assert live.apps.planner.subnets is not None
    live.apps.planner.subnets.routes = list  # the host's own routes play no part here
    listing(live, monkeypatch, {"ip": "10.231.0.2"})
    monkeypatch.setattr(dial, "host_links", lambda: {
        "br-0123456789ab": [ipaddress.IPv4Network("10.231.0.0/26")]})
    await svc.start()
    try:
        await install(live, "web", 18322)
        live.apps.status.refresh()
        await svc.set_base("home.lan", "auto")
        assert svc.dialled() == {"web": {"10.231.0.2"}}
        failed: list[int] = []

        async def refuse(config: dict[str, Any]) -> None:
            failed.append(1)
            raise GatewayUnavailable("Caddy is down")

        monkeypatch.setattr(gateway, "load", refuse)  # the loads after the remove fail
        await live.apps.remove("web", purge=False)
        await asyncio.wait_for(live.runner.tasks["web"], 30)
        assert live.apps.planner.subnets is not None
        assert live.apps.planner.subnets.stored("web") == {}
        for _ in range(400):
            if failed:
                break
            await asyncio.sleep(0.05)
        assert failed, "a load was tried after the remove"
        assert svc.dialled() == {"web": {"10.231.0.2"}}, "Caddy may still hold the route"
        monkeypatch.undo()
        svc.schedule()
        for _ in range(400):
            if svc.dialled() == {}:
                break
            await asyncio.sleep(0.05)
        assert svc.dialled() == {}
        assert "stackhub-app-web" not in routes(gateway.configs[-1])
    finally:
        await svc.stop()
