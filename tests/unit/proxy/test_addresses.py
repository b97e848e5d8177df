"""The address "Open" uses (proxy/addresses.py): the https gateway name first, never a dead
port, and the same choice in every instance view the API serves (admins and members)."""

from __future__ import annotations

from stackhub.apps.models import InstanceRead, InstanceStatus
from stackhub.catalog.models import WebEntry
from stackhub.proxy.addresses import open_url
from stackhub.proxy.models import DomainState
from stackhub.proxy.service import ProxyService
from stackhub.services import Services
from stackhub.state.instances import PortMapping
from tests.unit.proxy.test_service import install, proxy  # noqa: F401 (a fixture)

NOW = "2026-01-01T00:00:00Z"


def view(*, main: bool = True, port: int | None = 18080) -> InstanceRead:
    """An instance view of `web` with its main entry on port 80 published at `port`."""
    ports = [] if port is None else [PortMapping(service="web", host_port=port,
                                                 container_port=80)]
    return InstanceRead(
        name="web", app="official/web", store="official", format="stackhub", version="1",
        status=InstanceStatus.RUNNING, main=WebEntry(service="web", port=80) if main else None,
        ports=ports, urls=[f"http://box.lan:{port}/"] if port and main else [], parameters={},
        created_at=NOW, updated_at=NOW)


def test_the_automatic_name_comes_first() -> None:
    assert open_url(view(), base="home.lan", custom=["cloud.example.com"], protected=False,
                    https_port=443) == "https://web.home.lan"
    assert open_url(view(), base="home.lan", custom=[], protected=True,
                    https_port=8443) == "https://web.home.lan:8443"


def test_a_custom_domain_without_a_base() -> None:
    assert open_url(view(), base=None, custom=["a.example.com", "b.example.com"],
                    protected=True, https_port=443) == "https://a.example.com"


def test_the_plain_port_only_when_not_protected() -> None:
    assert open_url(view(), base=None, custom=[], protected=False,
                    https_port=443) == "http://box.lan:18080/"
    # protected: the port answers on 127.0.0.1 only, so a link to it would be dead
    assert open_url(view(), base=None, custom=[], protected=True, https_port=443) is None


def test_nothing_to_open_without_a_web_page() -> None:
    for bare in (view(main=False), view(port=None)):
        assert open_url(bare, base="home.lan", custom=["a.example.com"], protected=False,
                        https_port=443) is None


def shown(live: Services, name: str) -> InstanceRead:
    """Return one instance as clients get it (`views`: with the other domains' fields)."""
    (view,) = live.apps.views([live.apps.records.get(name)])
    return view


async def test_every_instance_view_carries_the_choice(
        live: Services, proxy: ProxyService) -> None:  # noqa: F811
    await install(live, "web", 18341)
    await install(live, "other", 18342)
    assert shown(live, "web").open_url == "http://host.test:18341/"
    live.proxy.records.set_protected("other", True)
    assert shown(live, "other").open_url is None
    live.proxy.records.put("cloud.example.com", "other", DomainState.PENDING.value)
    assert shown(live, "other").open_url is None  # not serving yet
    live.proxy.records.update("cloud.example.com", state=DomainState.ACTIVE.value)
    assert shown(live, "other").open_url == "https://cloud.example.com:8443"
    await proxy.set_base("home.lan", "auto")
    assert {i.name: i.open_url for i in live.apps.views(live.apps.records.all())} == {
        "other": "https://other.home.lan:8443", "web": "https://web.home.lan:8443"}

