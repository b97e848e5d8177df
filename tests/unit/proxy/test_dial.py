"""Dialling an app's main container instead of its published port (STACKHUB_GATEWAY_DIAL)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from stackhub.adapters.engine import ContainerDetailRecord, ContainerInfo, NetworkAttachment
from stackhub.events import Event
from stackhub.proxy import dial
from stackhub.proxy.service import GatewaySettings
from stackhub.services import Services
from tests.unit.proxy.test_service import FakeGateway, FakeResolver, install, routes, upstream


def detail(state: str = "running", **networks: str) -> ContainerDetailRecord:
    return ContainerDetailRecord(id="c1", name="web-1", state=state, networks=[
        NetworkAttachment(name=name, ip_address=ip) for name, ip in networks.items()])


def box(service: str, state: str, name: str) -> ContainerInfo:
    return ContainerInfo(id=name, name=name, service=service, state=state)


def test_only_an_ipv4_address_on_the_project_own_network_is_dialled() -> None:
    assert dial.container_address(detail(stackhub_web_default="10.1.0.2"),
                                  "stackhub_web", 80) == "10.1.0.2:80"
    # another project's or a shared network, the default bridge, the host: never
    assert dial.container_address(detail(shared="10.2.0.2", bridge="172.17.0.2",
                                         stackhub_webx="10.3.0.2"),
                                  "stackhub_web", 80) is None
    assert dial.container_address(detail(stackhub_web_default=""), "stackhub_web", 80) is None
    assert dial.container_address(detail(stackhub_web_default="fd00::2"),
                                  "stackhub_web", 80) is None
    assert dial.container_address(detail("exited", stackhub_web_default="10.1.0.2"),
                                  "stackhub_web", 80) is None
    assert dial.container_address(detail(stackhub_web_default="10.1.0.2"), None, 80) is None


def test_the_running_main_container_is_preferred() -> None:
    found = dial.main_container([box("db", "running", "a"), box("web", "exited", "b"),
                                 box("web", "running", "c")], "web")
    assert found is not None and found.name == "c"
    assert dial.main_container([box("db", "running", "a")], "web") is None


def test_the_setting_defaults_to_the_published_port() -> None:
    assert GatewaySettings.from_env({}).dial == dial.PORT
    assert GatewaySettings.from_env({"STACKHUB_GATEWAY_DIAL": "bogus"}).dial == dial.PORT
    assert GatewaySettings.from_env({"STACKHUB_GATEWAY_DIAL": " Container "}).dial == \
        dial.CONTAINER


async def test_routes_follow_the_main_container_address(
        live: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = live.proxy
    gateway = FakeGateway(live.paths.root / "gateway")
    svc.gateway = gateway
    svc.settings = GatewaySettings(http_port=8080, https_port=8443, dial=dial.CONTAINER)
    svc._resolver = FakeResolver()
    live.paths.server_info.write_text(json.dumps({"url": "http://127.0.0.1:8420"}))
    address = {"ip": "10.9.0.2"}
    asked: list[str] = []

    def inspect(ref: str) -> ContainerDetailRecord:
        asked.append(ref)
        return detail(**{"stackhub-web_default": address["ip"], "elsewhere": "10.8.0.2"})

    monkeypatch.setattr(live.apps.status.engine, "inspect_container", inspect)
    await svc.start()
    try:
        await install(live, "web", 18321)
        live.apps.status.refresh()
        project = live.apps.status.containers("web")[0].project
        assert project == "stackhub-web", project  # the network name the test relies on
        await svc.set_base("home.lan", "auto")
        assert upstream(routes(gateway.configs[-1])["stackhub-app-web"]) == "10.9.0.2:80"
        assert asked

        async def loads_with(dialled: str) -> dict[str, Any]:
            for _ in range(100):
                config = gateway.configs[-1]
                if upstream(routes(config)["stackhub-app-web"]) == dialled:
                    return config
                await asyncio.sleep(0.05)
            raise AssertionError(f"no load dialling {dialled}")

        await asyncio.sleep(0.6)  # loads the install and the base asked for are done
        count = len(gateway.configs)
        live.bus.publish(Event("instance", "web", "containers", {}))  # same address
        await asyncio.sleep(0.6)
        assert len(gateway.configs) == count  # an unchanged address loads nothing
        address["ip"] = "10.9.0.5"  # the container was recreated elsewhere
        live.bus.publish(Event("instance", "web", "containers", {}))
        await loads_with("10.9.0.5:80")
        await live.apps.lifecycle("web", "stop")
        await asyncio.sleep(0.6)
        page = routes(gateway.configs[-1])["stackhub-app-web"]["handle"][0]
        assert page["status_code"] == 503
    finally:
        await svc.stop()
