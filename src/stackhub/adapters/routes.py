"""The host's IPv4 routing table, read from /proc/net/route (the kernel's own listing)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

ROUTES = Path("/proc/net/route")
RTF_UP, RTF_GATEWAY = 0x1, 0x2


@dataclass(frozen=True)
class HostRoute:
    """One IPv4 route of the host."""

    interface: str
    network: ipaddress.IPv4Network
    up: bool
    via_gateway: bool
    """Reached through a gateway (not straight onto the interface's link)."""


def read_routes(path: Path = ROUTES) -> list[HostRoute]:
    """Return the host's IPv4 routes; unreadable tables and malformed lines give nothing."""
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return []
    routes: list[HostRoute] = []
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:  # little-endian hex, as the kernel writes them
            flags = int(fields[3], 16)
            gateway = int(fields[2], 16)
            dest = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
            mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
            network = ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)
        except ValueError:
            continue
        routes.append(HostRoute(interface=fields[0], network=network, up=bool(flags & RTF_UP),
                                via_gateway=bool(flags & RTF_GATEWAY) or gateway != 0))
    return routes
