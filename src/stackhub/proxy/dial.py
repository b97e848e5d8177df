"""Where the gateway dials an app: its main container's own address, or its published port.

By default (``STACKHUB_GATEWAY_DIAL=container``) the gateway (Caddy on the host) dials the
app's main container on one of its compose project's own networks at the container port,
instead of ``127.0.0.1:<published port>``, which goes through Docker's userland proxy
(docker-proxy: about a third of a small app's CPU per request). An address is dialled only
when it is provably this app's and reachable from the host:

- on a network of the app's own project (``<project>_<name>``), never a shared, external or
  default-bridge network;
- inside the subnet StackHub gave that network (``instance_subnets``): the instance holds it
  alone while it exists, and the subnet allocator never hands out a block holding an address
  the gateway still dials (``ProxyService.dialled``), so a removed app's address cannot go to
  another app before the gateway has dropped the route;
- on a subnet the host reaches directly through that network's own bridge (``br-`` and the
  first 12 hex digits of its id, in ``/proc/net/route``): a rootless engine (its bridges live in
  another network namespace), a remote engine or a custom bridge name fails this test.

Anything else (no running main container, no such address) keeps the published port. The
address changes when the container is recreated or restarted, so on every change of an app's
containers the proxy service looks it up again and loads the config when it moved.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from stackhub.adapters import routes
from stackhub.adapters.engine import ContainerInfo, NetworkAttachment

PORT = "port"
CONTAINER = "container"
MODES = (PORT, CONTAINER)
Net = ipaddress.IPv4Network
Links = Mapping[str, list[Net]]
"""Host interface -> the IPv4 subnets routed straight onto it (no gateway)."""


def mode(value: str) -> str:
    """Read STACKHUB_GATEWAY_DIAL: ``port`` keeps the published port, anything else dials."""
    return PORT if value.strip().lower() == PORT else CONTAINER


def host_links(path: Path = routes.ROUTES) -> dict[str, list[Net]]:
    """Return the host's directly connected IPv4 routes by interface (up, no gateway)."""
    links: dict[str, list[Net]] = {}
    for route in routes.read_routes(path):
        if route.up and not route.via_gateway and route.network.prefixlen:
            links.setdefault(route.interface, []).append(route.network)
    return links


def bridge(network_id: str) -> str:
    """Return the host interface Docker makes for a bridge network (``br-`` + 12 hex)."""
    return f"br-{network_id[:12]}"


def main_container(containers: Iterable[ContainerInfo], service: str) -> ContainerInfo | None:
    """Return the container of `service` (a running one first), or None."""
    found = [c for c in containers if c.service == service]
    found.sort(key=lambda c: (c.state != "running", c.name))
    return found[0] if found else None


class Attached(Protocol):
    """A container as the engine lists or inspects it: its state and its networks."""

    @property
    def state(self) -> str: ...

    @property
    def networks(self) -> Sequence[NetworkAttachment]: ...


def container_address(box: Attached, project: str | None, port: int, *,
                      owned: Mapping[str, list[str]], links: Links) -> tuple[str | None, str]:
    """Return (``IP:PORT`` or None, why) for the container on one of its project's networks.

    `owned` is the instance's subnets by network name (as the app names it: ``default``),
    `links` the host's directly connected routes (`host_links`).
    """
    if not project or box.state != "running":
        return None, "its main container is not running"
    why = "it has no IPv4 address on a network of its own project"
    for network in sorted(box.networks, key=lambda n: n.name):
        if not network.name.startswith(f"{project}_"):
            continue  # host, bridge, an external network shared with other apps: never
        try:
            address = ipaddress.IPv4Address(network.ip_address)
        except ValueError:
            continue
        if address.is_loopback or address.is_unspecified:
            continue
        mine = [Net(s, strict=False) for s in owned.get(network.name[len(project) + 1:], [])]
        if not any(address in subnet for subnet in mine):
            why = f"{address} is not in a subnet StackHub gave network {network.name}"
            continue
        if not network.network_id or not any(
                address in route for route in links.get(bridge(network.network_id), [])):
            why = (f"{address} is not reached through network {network.name}'s bridge on "
                   "this host (a rootless or remote engine, or a custom bridge name)")
            continue
        return f"{address}:{port}", "its main container's own address"
    return None, why
