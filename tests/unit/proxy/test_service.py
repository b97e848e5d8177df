"""The proxy service with a fake gateway: config from the database, batching, lifecycle, ask."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from stackhub.adapters.caddy import SERVER, CaddyGateway, Reapply
from stackhub.adapters.dns import Answer
from stackhub.apps.models import InstanceStatus
from stackhub.errors import AlreadyExists, Conflict, GatewayUnavailable, Invalid, NotFound
from stackhub.operations.journal import OperationFilter
from stackhub.proxy import service as service_module
from stackhub.proxy.models import DomainError, DomainErrorDetail, DomainFailure, DomainState
from stackhub.proxy.service import GatewaySettings, ProxyService, target
from stackhub.services import Services
from tests.unit.support import app_request


class FakeGateway(CaddyGateway):
    """Records every loaded config instead of talking to Caddy."""

    def __init__(self, home: Path, *, missing: bool = False) -> None:
        super().__init__(home, binary="/usr/bin/caddy")
        if missing:
            self.binary = None
        self.configs: list[dict[str, Any]] = []
        self.started = False

    async def start(self, reapply: Reapply) -> None:
        why = self.available()
        if why is not None:
            raise GatewayUnavailable(why)
        self.started = True

    @property
    def running(self) -> bool:
        return self.started

    async def load(self, config: dict[str, Any]) -> None:
        self.configs.append(config)

    async def stop(self) -> None:
        self.started = False


class FakeResolver:
    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {}

    def lookup(self, name: str) -> Answer:
        return self.answers.get(name, Answer())


@pytest.fixture
async def proxy(live: Services) -> AsyncIterator[ProxyService]:
    svc = live.proxy
    svc.gateway = FakeGateway(live.paths.root / "gateway")
    svc.settings = GatewaySettings(http_port=8080, https_port=8443,
                                   addresses=("203.0.113.7",))
    svc._resolver = FakeResolver()
    live.paths.server_info.write_text(json.dumps({"url": "http://127.0.0.1:8420"}))
    await svc.start()
    yield svc
    await svc.stop()


def routes(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = config["apps"]["http"]["servers"][SERVER]["routes"]
    return {r["@id"]: r for r in found if "@id" in r}


def upstream(route: dict[str, Any]) -> str:
    proxy = route["handle"][0]["routes"][-1]["handle"][0]
    return str(proxy["upstreams"][0]["dial"])


async def install(live: Services, name: str, port: int) -> None:
    await live.apps.install(app_request(name=name, values={"WEB_PORT": str(port)}))
    await asyncio.wait_for(live.runner.tasks[name], 30)


async def test_the_gateway_stays_off_until_a_base_or_domain_exists(
        live: Services, proxy: ProxyService) -> None:
    gateway = proxy.gateway
    assert isinstance(gateway, FakeGateway)
    assert not proxy.enabled() and not gateway.started and gateway.configs == []
    await install(live, "web", 18301)
    read = await proxy.set_base("Home.LAN", "auto")
    assert (read.base, read.tls, read.console) == ("home.lan", "internal", "console.home.lan")
    assert gateway.started and len(gateway.configs) == 1
    found = routes(gateway.configs[-1])
    assert found["stackhub-app-web"]["match"] == [{"host": ["web.home.lan"]}]
    assert upstream(found["stackhub-app-web"]) == "127.0.0.1:18301"
    assert upstream(found["stackhub-console"]) == "127.0.0.1:8420"
    names = [d.name for d in proxy.domains()]
    assert names == ["web.home.lan"]


async def test_lifecycle_changes_are_batched_into_one_load(
        live: Services, proxy: ProxyService, monkeypatch: pytest.MonkeyPatch) -> None:
    # a wide window, so that a slow, loaded machine still finishes both installs inside it
    monkeypatch.setattr(service_module, "DEBOUNCE", 2.0)
    gateway = proxy.gateway
    assert isinstance(gateway, FakeGateway)
    await proxy.set_base("home.lan", "auto")
    before = len(gateway.configs)

    async def loaded(count: int) -> None:
        for _ in range(400):
            if len(gateway.configs) >= count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"only {len(gateway.configs)} loads, expected {count}")

    for name, port in (("one", 18311), ("two", 18312)):  # both finish within the debounce
        await live.apps.install(app_request(name=name, values={"WEB_PORT": str(port)}))
    await asyncio.wait_for(asyncio.gather(*live.runner.tasks.values()), 30)
    for _ in range(5):
        proxy.schedule()
    await loaded(before + 1)
    await asyncio.sleep(0.3)  # nothing else follows
    assert len(gateway.configs) == before + 1  # two installs and five requests: one load
    assert {"stackhub-app-one", "stackhub-app-two"} <= set(routes(gateway.configs[-1]))
    await live.apps.lifecycle("one", "stop")
    await loaded(before + 2)
    assert len(gateway.configs) == before + 2
    pages = routes(gateway.configs[-1])["stackhub-app-one"]["handle"][0]["routes"]
    english, chinese = (step["handle"][0] for step in pages[::-1])
    assert english["status_code"] == 503 and "one is stopped" in english["body"]
    assert "应用 one 已停止" in chinese["body"]
    assert [d.target for d in proxy.domains("one")] == [None]


async def test_domain_features_answer_clearly_without_caddy(live: Services,
                                                            proxy: ProxyService) -> None:
    proxy.gateway = FakeGateway(live.paths.root / "gateway", missing=True)
    with pytest.raises(GatewayUnavailable, match="caddy is not installed"):
        await proxy.set_base("home.lan", "auto")
    assert proxy.base() == (None, None)
    proxy.settings = GatewaySettings(switch=False)
    with pytest.raises(Conflict, match="STACKHUB_GATEWAY=0"):
        await proxy.set_base("home.lan", "auto")


async def test_custom_domain_checks_come_first(live: Services, proxy: ProxyService) -> None:
    await install(live, "web", 18321)
    await install(live, "other", 18322)
    await proxy.set_base("box.example.com", "auto")
    resolver = proxy.resolver
    assert isinstance(resolver, FakeResolver)
    resolver.answers["wrong.example.org"] = Answer(addresses=("10.1.2.3",))
    with pytest.raises(Invalid) as caught:
        await live.domains.add("web", "wrong.example.org")
    assert "wrong.example.org. CNAME web.box.example.com." in caught.value.message
    assert caught.value.details["expected"][1]["value"] == "203.0.113.7"
    with pytest.raises(Invalid, match="under this box's base"):
        await live.domains.add("web", "x.box.example.com")
    with pytest.raises(NotFound):
        await live.domains.add("nope", "shop.example.org")
    live.proxy.records.put("taken.example.org", "other", DomainState.ACTIVE.value)
    with pytest.raises(AlreadyExists, match="already bound to 'other'"):
        await live.domains.add("web", "taken.example.org")
    assert [r.name for r in proxy.records.all()] == ["taken.example.org"]
    ops = live.apps.operations(OperationFilter(kind="domain"))
    assert ops.items == []  # nothing was journaled for the refused requests


async def test_a_removed_instance_leaves_a_dangling_domain(live: Services,
                                                           proxy: ProxyService) -> None:
    await install(live, "web", 18331)
    proxy.records.put("shop.example.org", "web", DomainState.ACTIVE.value)
    proxy.records.put("gone.example.org", "ghost", DomainState.ACTIVE.value)
    found = {d.name: d for d in proxy.domains()}
    assert found["shop.example.org"].target == "127.0.0.1:18331"
    assert found["gone.example.org"].state == DomainState.DANGLING
    assert "was removed" in (found["gone.example.org"].error or "")
    assert found["gone.example.org"].error_code == DomainError.INSTANCE_REMOVED
    assert found["shop.example.org"].error is None
    assert found["shop.example.org"].error_code is None
    spec_hosts = proxy.spec_hosts()
    assert "shop.example.org" in spec_hosts and "gone.example.org" not in spec_hosts


async def test_ask_allows_only_served_names_with_the_token(live: Services,
                                                           proxy: ProxyService) -> None:
    await install(live, "web", 18341)
    proxy.records.put("shop.example.org", "web", DomainState.PENDING.value)
    assert proxy.allows("shop.example.org", proxy.ask_token)
    assert not proxy.allows("shop.example.org", "wrong")
    assert not proxy.allows("evil.example.org", proxy.ask_token)
    proxy.records.update("shop.example.org", state=DomainState.FAILED.value, error="x")
    assert not proxy.allows("shop.example.org", proxy.ask_token)


async def test_an_apps_and_the_gateways_state_are_errors_with_codes(
        live: Services, proxy: ProxyService) -> None:
    await install(live, "web", 18371)
    inst = live.apps.get("web")
    assert target(inst) == ("127.0.0.1:18371", None)
    assert target(inst.model_copy(update={"status": InstanceStatus.STOPPED}))[1] == \
        DomainFailure("The app web is stopped. Start it in StackHub to use it here.",
                      DomainError.APP_STOPPED)
    assert target(inst.model_copy(update={"main": None}))[1] == \
        DomainFailure("The app web has no web page.", DomainError.APP_NO_WEB)
    assert target(inst.model_copy(update={"ports": []}))[1] == \
        DomainFailure("The app web publishes no port for its web page.",
                      DomainError.APP_NO_PORT)
    assert proxy._not_running() == DomainFailure(
        "the gateway is not running (turned off until a domain exists)", DomainError.GATEWAY_OFF)
    await proxy.set_base("home.lan", "auto")
    web = proxy.domains()[0]
    assert (web.error, web.error_code, web.error_detail) == (None, None, None)
    await proxy.gateway.stop()
    web = proxy.domains()[0]
    assert (web.error, web.error_code) == ("the gateway is not running",
                                           DomainError.GATEWAY_STOPPED)
    assert proxy._state is not None
    proxy._state.error = "port 80 is taken by nginx (pid 7)"
    web = proxy.domains()[0]
    assert (web.error, web.error_code) == ("port 80 is taken by nginx (pid 7)",
                                           DomainError.GATEWAY_DOWN)
    assert web.error_detail == DomainErrorDetail(detail="port 80 is taken by nginx (pid 7)")


async def test_errors_stored_without_a_code_or_with_an_unknown_one_read_as_english(
        live: Services, proxy: ProxyService) -> None:
    """Rows from before the codes (NULL) or from a newer StackHub: only `error` is shown."""
    await install(live, "web", 18381)
    proxy.records.put("shop.example.org", "web", DomainState.ACTIVE.value)
    proxy.records.update("shop.example.org", state=DomainState.FAILED.value, error="old words")
    shop = {d.name: d for d in proxy.domains()}["shop.example.org"]
    assert (shop.error, shop.error_code, shop.error_detail) == ("old words", None, None)
    with proxy.records.db.transaction() as conn:
        conn.execute("UPDATE domains SET error_code = 'from_the_future', error_detail = "
                     "'{\"detail\": 1}' WHERE name = 'shop.example.org'")
    shop = {d.name: d for d in proxy.domains()}["shop.example.org"]
    assert (shop.error, shop.error_code, shop.error_detail) == ("old words", None, None)
    with proxy.records.db.transaction() as conn:
        conn.execute("UPDATE domains SET error_code = 'caa', error_detail = 'not json' "
                     "WHERE name = 'shop.example.org'")
    shop = {d.name: d for d in proxy.domains()}["shop.example.org"]
    assert (shop.error, shop.error_code, shop.error_detail) == ("old words", DomainError.CAA,
                                                                None)
    proxy.records.put("shop.example.org", "web", DomainState.PENDING.value)  # clears them all
    row = proxy.records.find("shop.example.org")
    assert row is not None and (row.error, row.error_code, row.error_detail) == (None,) * 3


def test_every_domain_error_code_is_worded_in_both_console_languages() -> None:
    """web/src/utils/domain-error.ts words each code; a code it lacks shows English only."""
    locales = Path(__file__).resolve().parents[3] / "web" / "src" / "i18n" / "locales"
    for name in ("en.json", "zh-CN.json"):
        worded = json.loads((locales / name).read_text())["domainError"]["text"]
        assert sorted(worded) == sorted(code.value for code in DomainError), name
