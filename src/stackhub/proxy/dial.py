"""Where the gateway dials an app: its published port, or its main container's own address.

With ``STACKHUB_GATEWAY_DIAL=container`` the gateway (Caddy on the host) dials the app's main
container on one of its compose project's own networks (``<project>_*``) at the container port,
instead of ``127.0.0.1:<published port>``, which goes through Docker's userland proxy
(docker-proxy: about a third of a small app's CPU per request). The address changes when the
container is recreated or restarted, so on every change of an app's containers the proxy
service looks the address up again and loads the config when it moved. Anything unexpected
(no running main container, no IPv4 address on a project network) keeps the published port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from stackhub.adapters.engine import ContainerDetailRecord, ContainerInfo

PORT = "port"
CONTAINER = "container"
MODES = (PORT, CONTAINER)


def main_container(containers: Iterable[ContainerInfo], service: str) -> ContainerInfo | None:
    """Return the container of `service` (a running one first), or None."""
    found = [c for c in containers if c.service == service]
    found.sort(key=lambda c: (c.state != "running", c.name))
    return found[0] if found else None


def container_address(detail: ContainerDetailRecord, project: str | None,
                      port: int) -> str | None:
    """Return ``IP:PORT`` of the container on one of its project's own networks, or None."""
    if not project or detail.state != "running":
        return None
    for network in sorted(detail.networks, key=lambda n: n.name):
        if not network.name.startswith(f"{project}_"):
            continue  # host, bridge, an external network shared with other apps: never
        try:
            address = ipaddress.IPv4Address(network.ip_address)
        except ValueError:
            continue
        if address.is_loopback or address.is_unspecified:
            continue
        return f"{address}:{port}"
    return None
