"""Allocate host ports that are free on the host and not held by another instance."""

from __future__ import annotations

import socket
from collections.abc import Iterable

from stackhub.catalog.models import Parameter
from stackhub.errors import Conflict, Invalid

EPHEMERAL_START = 32768
SEARCH_SPAN = 2000


def host_port_free(port: int, protocol: str = "tcp") -> bool:
    """Tell whether nothing on this host listens on `port` (all addresses)."""
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):  # noqa: S104
        try:
            sock = socket.socket(family, kind)
        except OSError:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address, port))
        except OSError as err:
            if family == socket.AF_INET6 and err.errno == 99:  # no IPv6 on this host
                continue
            return False
        finally:
            sock.close()
    return True


class PortAllocator:
    """Hand out host ports, skipping ports held by instances, the engine or the host."""

    def __init__(self, held: dict[int, str], *, free: object = None) -> None:
        """Start with `held`: port -> who holds it (an instance or a container)."""
        self.held = dict(held)
        self.claimed: set[int] = set()
        self._free = free if callable(free) else host_port_free

    def _is_free(self, port: int, protocol: str) -> bool:
        return port not in self.held and bool(self._free(port, protocol))

    def _claim(self, port: int, owner: str) -> int:
        self.held[port] = owner
        self.claimed.add(port)
        return port

    def pick(self, param: Parameter, wanted: int | None, asked: bool) -> int:
        """Return `wanted` if free; if the user asked for it and it is taken, refuse."""
        if wanted is not None and self._is_free(wanted, param.protocol):
            return self._claim(wanted, param.name)
        if wanted is not None and asked:
            raise Conflict(f"host port {wanted}/{param.protocol} for {param.name} is already in "
                           f"use{self._by(wanted)}; choose another or leave it unset",
                           details={"port": wanted, "parameter": param.name})
        start = wanted + 1 if wanted is not None else 8000
        candidates = [*range(start, min(start + SEARCH_SPAN, 65536)),
                      *range(8000, 8000 + SEARCH_SPAN)]
        for port in candidates:
            if port < 1024 or EPHEMERAL_START <= port < 61000:
                continue
            if self._is_free(port, param.protocol):
                return self._claim(port, param.name)
        raise Conflict(f"no free host port found for {param.name} near {start}")

    def _by(self, port: int) -> str:
        owner = self.held.get(port)
        return f" by {owner}" if owner else " by another program on this host"

    def check_published(self, published: Iterable[tuple[int, str, str]]) -> None:
        """Refuse fixed published ports (port, protocol, service) that are already taken."""
        seen: set[tuple[int, str]] = set()
        for port, protocol, service in published:
            if not 1 <= port <= 65535:
                raise Invalid(f"service {service}: published port {port} is out of range")
            if (port, protocol) in seen:
                raise Conflict(f"host port {port}/{protocol} is published twice in this project")
            seen.add((port, protocol))
            if port in self.claimed:
                continue
            if port in self.held or not self._free(port, protocol):
                raise Conflict(f"host port {port}/{protocol} (service {service}) is already "
                               f"in use{self._by(port)}",
                               details={"port": port, "service": service})
