"""Instance network subnets: allocated, kept, freed, clear of the engine and routes, checked."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest

from stackhub import labels, yamlsafe
from stackhub.adapters.fakes import FakeCompose, FakeEngine
from stackhub.apps.models import InstanceStatus
from stackhub.apps.subnets import SubnetAllocator, host_routes, project_networks
from stackhub.catalog.models import AppDefinition
from stackhub.config import SubnetPool, subnet_pool
from stackhub.errors import Conflict, EngineError, Invalid
from stackhub.services import Services

from ..support import (
    IMAGE,
    app_request,
    compose_request,
    create_instance,
    instance_record,
    plan_request,
)

Net = ipaddress.IPv4Network


@pytest.fixture
def routes() -> list[Net]:
    """The host routes the allocator sees (the real host's are never read)."""
    return []


@pytest.fixture(autouse=True)
def _routes(services: Services, routes: list[Net]) -> None:
    assert services.apps.planner.subnets is not None
    services.apps.planner.subnets.routes = lambda: list(routes)


def allocator(svc: Services) -> SubnetAllocator:
    assert svc.apps.planner.subnets is not None
    return svc.apps.planner.subnets


def use_pool(svc: Services, text: str, prefix: int) -> None:
    """Give the planner an allocator over another pool (same database, engine and routes)."""
    old = allocator(svc)
    svc.apps.planner.subnets = SubnetAllocator(old.db, old.engine,
                                               SubnetPool(Net(text), prefix), routes=old.routes)


async def settle(svc: Services, name: str) -> None:
    await asyncio.wait_for(svc.runner.tasks[name], 30)
    await asyncio.sleep(0)


async def install(svc: Services, name: str) -> None:
    await svc.apps.install(app_request(name=name))
    await settle(svc, name)


def written(svc: Services, name: str) -> dict[str, object]:
    return yamlsafe.load_mapping((svc.paths.instance_dir(name) / "compose.yaml").read_bytes(),
                                 what="test")


TWO_NETWORKS = f"""\
services:
  web:
    image: {IMAGE}
    networks: [front, back]
  db:
    image: {IMAGE}
    networks: [back]
networks:
  front: {{}}
  back: {{}}
  unused: {{}}
"""


async def test_install_gives_the_default_network_a_block_and_keeps_it(
        live: Services, engine: FakeEngine) -> None:
    plan = await live.apps.plan(plan_request(app_request(name="blog")))
    assert plan.subnets == {"default": ["10.231.0.0/26"]}
    assert allocator(live).stored("blog") == {}, "a preview holds and stores nothing"
    await install(live, "blog")
    assert allocator(live).stored("blog") == {"default": ["10.231.0.0/26"]}
    networks = written(live, "blog")["networks"]
    assert networks["default"]["ipam"] == {"config": [{"subnet": "10.231.0.0/26"}]}  # type: ignore[index]
    assert engine.network_subnets["stackhub-blog_default"] == ["10.231.0.0/26"]
    await install(live, "blog-2")
    assert allocator(live).stored("blog-2") == {"default": ["10.231.0.64/26"]}
    # re-rendering (retry after a crash) keeps the instance's block
    record = live.records.get("blog")
    live.apps.planner.rerender("blog", AppDefinition.model_validate(record.definition),
                               record.parameters)
    assert allocator(live).stored("blog") == {"default": ["10.231.0.0/26"]}
    assert written(live, "blog")["networks"]["default"]["ipam"] == {  # type: ignore[index]
        "config": [{"subnet": "10.231.0.0/26"}]}


async def test_each_joined_network_gets_its_own_block(live: Services) -> None:
    plan = await live.apps.plan(plan_request(compose_request(TWO_NETWORKS, name="duo")))
    assert plan.subnets == {"back": ["10.231.0.0/26"], "front": ["10.231.0.64/26"]}
    assert "unused" not in plan.subnets and "default" not in plan.subnets
    assert "subnet: 10.231.0.64/26" in plan.compose_file


async def test_remove_frees_the_block_and_a_failed_remove_keeps_it(
        live: Services, compose: FakeCompose) -> None:
    await install(live, "blog")
    await install(live, "blog-2")
    compose.fail("down", EngineError("compose down failed"))
    await live.apps.remove("blog", purge=False)
    await settle(live, "blog")
    assert live.records.get("blog").status == InstanceStatus.FAILED
    assert allocator(live).stored("blog") == {"default": ["10.231.0.0/26"]}
    await live.apps.remove("blog", purge=False)
    await settle(live, "blog")
    assert allocator(live).stored("blog") == {}
    plan = await live.apps.plan(plan_request(app_request(name="blog-3")))
    assert plan.subnets == {"default": ["10.231.0.0/26"]}, "the freed block is handed out again"


async def test_a_block_the_gateway_still_dials_goes_to_no_other_instance(
        live: Services) -> None:
    assert allocator(live).busy == live.proxy.dialled  # wired by build_services
    await install(live, "blog")
    dialled = {"blog": {"10.231.0.2"}}  # Caddy still holds a route to blog's container
    allocator(live).busy = lambda: dialled
    await live.apps.remove("blog", purge=False)
    await settle(live, "blog")
    assert allocator(live).stored("blog") == {}
    plan = await live.apps.plan(plan_request(app_request(name="blog-3")))
    assert plan.subnets == {"default": ["10.231.0.64/26"]}
    same = await live.apps.plan(plan_request(app_request(name="blog")))
    assert same.subnets == {"default": ["10.231.0.0/26"]}, "its own route blocks nothing"
    custom = TWO_NETWORKS.replace("  back: {}", "  back:\n    ipam:\n      config:\n"
                                  "        - subnet: 10.231.0.0/28")
    with pytest.raises(Conflict, match="the gateway's route to blog"):
        await live.apps.plan(plan_request(compose_request(custom, name="duo")))
    dialled.clear()  # the gateway loaded a config without the route
    plan = await live.apps.plan(plan_request(app_request(name="blog-4")))
    assert plan.subnets == {"default": ["10.231.0.0/26"]}


@pytest.mark.parametrize("routes", [[Net("10.231.0.128/26"), Net("0.0.0.0/0")]])
async def test_blocks_skip_every_engine_network_and_the_hosts_routes(
        live: Services, engine: FakeEngine) -> None:
    engine.add_network("someones-net", "10.231.0.0/25", "fd00:1::/64")  # not StackHub's
    plan = await live.apps.plan(plan_request(app_request(name="blog")))
    assert plan.subnets == {"default": ["10.231.0.192/26"]}


async def test_concurrent_installs_never_share_a_block(live: Services) -> None:
    held = [await live.apps.planner.plan(plan_request(app_request(name=f"app-{i}")), hold=True)
            for i in range(3)]
    assert [p.subnets["default"] for p in held] == [["10.231.0.0/26"], ["10.231.0.64/26"],
                                                   ["10.231.0.128/26"]]
    assert allocator(live).stored("app-0") == {}
    allocator(live).release("app-0", held[0].subnets)
    again = await live.apps.planner.plan(plan_request(app_request(name="app-9")), hold=True)
    assert again.subnets == {"default": ["10.231.0.0/26"]}


async def test_a_full_pool_is_refused_before_anything_is_created(
        live: Services, compose: FakeCompose) -> None:
    use_pool(live, "10.231.0.0/25", 26)  # two blocks
    await install(live, "blog")
    await install(live, "blog-2")
    with pytest.raises(Conflict, match=r"no free /26 left in 10.231.0.0/25 .*"
                                       "STACKHUB_SUBNET_POOL"):
        await live.apps.install(app_request(name="blog-3"))
    assert live.records.find("blog-3") is None
    assert not live.paths.instance_dir("blog-3").exists()
    assert [c.project for c in compose.calls if c.verb == "up"] == ["stackhub-blog",
                                                                   "stackhub-blog-2"]
    assert live.runner.journal.instances_journaled() == {"blog", "blog-2"}


CUSTOM = f"""\
services:
  web:
    image: {IMAGE}
    networks: [back]
networks:
  back:
    ipam:
      config:
        - subnet: ${{BACK_NET:-192.168.77.0/24}}
        - subnet: fd00:77::/64
"""


async def test_a_subnet_the_app_sets_is_kept(live: Services) -> None:
    await live.apps.install(compose_request(CUSTOM, name="custom"))
    await settle(live, "custom")
    assert allocator(live).stored("custom") == {"back": ["192.168.77.0/24"]}
    config = written(live, "custom")["networks"]["back"]["ipam"]["config"]  # type: ignore[index]
    assert config == [{"subnet": "${BACK_NET:-192.168.77.0/24}"}, {"subnet": "fd00:77::/64"}]
    # another app asking for an overlapping subnet is refused, naming the holder
    with pytest.raises(Conflict, match=r"networks.back: subnet 192.168.77.0/25 overlaps "
                                       r"instance custom \(192.168.77.0/24\)"):
        await live.apps.install(compose_request(CUSTOM.replace(
            "192.168.77.0/24", "192.168.77.0/25"), name="custom-2"))
    assert live.records.find("custom-2") is None


async def test_a_subnet_clashing_with_an_engine_network_is_refused(
        live: Services, engine: FakeEngine, compose: FakeCompose) -> None:
    engine.add_network("lan-bridge", "192.168.77.128/25")
    with pytest.raises(Conflict, match="overlaps network lan-bridge") as caught:
        await live.apps.install(compose_request(CUSTOM, name="custom"))
    assert caught.value.details["clash"] == "192.168.77.128/25"
    assert live.records.find("custom") is None and "up" not in compose.verbs()
    with pytest.raises(Invalid, match="not a valid network"):
        await live.apps.plan(plan_request(compose_request(CUSTOM.replace(
            "192.168.77.0/24", "192.168.777.0/24"), name="custom")))


async def test_an_instance_from_before_subnets_keeps_its_live_network(
        live: Services, engine: FakeEngine) -> None:
    record = instance_record("legacy", status="running")
    create_instance(live.records, record)
    project = labels.project_name("legacy")
    engine.add_network(f"{project}_default", "172.18.0.0/16",
                       labels_={labels.COMPOSE_PROJECT: project})
    assert allocator(live).stored("legacy") == {}
    plan = await live.apps.plan(plan_request(app_request(name="blog")))
    assert plan.subnets == {"default": ["10.231.0.0/26"]}
    live.apps.planner.rerender("legacy", AppDefinition.model_validate(record.definition),
                               record.parameters)
    assert allocator(live).stored("legacy") == {"default": ["172.18.0.0/16"]}


def test_which_networks_get_a_subnet() -> None:
    compose = {"services": {"a": {"network_mode": "host"}, "b": {"network_mode": "service:a"},
                            "c": {"networks": {"ext": None, "mac": None, "own": None}},
                            "d": {}},
               "networks": {"default": {}, "ext": {"external": True},
                            "mac": {"driver": "macvlan"}, "own": {"driver": "bridge"},
                            "spare": {}}}
    assert sorted(project_networks(compose)) == ["default", "own"]
    assert project_networks({"services": {"a": {"network_mode": "none"}},
                             "networks": {"default": {}}}) == {}


def test_host_routes_are_read_from_proc(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
        "wg0\t00E70A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
    assert host_routes(table) == [Net("172.17.0.0/16"), Net("10.10.231.0/24")]
    assert host_routes(tmp_path / "missing") == []


def test_pool_settings_from_the_environment() -> None:
    assert subnet_pool({}) == SubnetPool(Net("10.231.0.0/16"), 26)
    assert subnet_pool({}).blocks == 1024
    custom = subnet_pool({"STACKHUB_SUBNET_POOL": "172.30.0.0/20",
                          "STACKHUB_SUBNET_PREFIX": "/24"})
    assert custom == SubnetPool(Net("172.30.0.0/20"), 24) and custom.blocks == 16
    bad = [({"STACKHUB_SUBNET_POOL": "8.8.0.0/16"}, "private IPv4 range"),
           ({"STACKHUB_SUBNET_POOL": "fd00::/48"}, "private IPv4 range"),
           ({"STACKHUB_SUBNET_POOL": "192.0.2.0/24"}, "private IPv4 range"),
           ({"STACKHUB_SUBNET_POOL": "10.231.0.1/16"}, "is not a network"),
           ({"STACKHUB_SUBNET_POOL": "nonsense"}, "is not a network"),
           ({"STACKHUB_SUBNET_PREFIX": "29"}, "from 16 to 28"),
           ({"STACKHUB_SUBNET_PREFIX": "15"}, "from 16 to 28"),
           ({"STACKHUB_SUBNET_PREFIX": "x"}, "from 16 to 28"),
           ({"STACKHUB_SUBNET_POOL": "10.1.2.0/27"}, "smaller than one /26 block")]
    for env, message in bad:
        with pytest.raises(Invalid, match=message):
            subnet_pool(env)


async def test_a_block_taken_elsewhere_before_compose_up_moves_and_the_install_goes_on(
        live: Services, engine: FakeEngine, compose: FakeCompose) -> None:
    gate = compose.hold("up")
    await live.apps.install(app_request(name="blog"))
    for _ in range(2000):
        if "up" in compose.verbs():
            break
        await asyncio.sleep(0.01)
    # another StackHub (or an admin) makes a network on the planned block first
    engine.add_network("made-elsewhere", "10.231.0.0/24")
    compose.fail("up", EngineError("failed to create network stackhub-blog_default: Error "
                                   "response from daemon: Pool overlaps with other one on "
                                   "this address space"))
    gate.set()
    await settle(live, "blog")
    assert live.records.get("blog").status == InstanceStatus.RUNNING
    assert compose.verbs().count("up") == 2
    assert allocator(live).stored("blog") == {"default": ["10.231.1.0/26"]}
    assert written(live, "blog")["networks"]["default"]["ipam"] == {  # type: ignore[index]
        "config": [{"subnet": "10.231.1.0/26"}]}
    assert engine.network_subnets["stackhub-blog_default"] == ["10.231.1.0/26"]


async def test_other_engine_errors_are_not_retried(live: Services, compose: FakeCompose) -> None:
    compose.fail("up", EngineError("no such image"))
    await live.apps.install(app_request(name="blog"))
    await settle(live, "blog")
    assert live.records.get("blog").status == InstanceStatus.FAILED
    assert compose.verbs().count("up") == 1
