"""Give every instance network an explicit small subnet from a private range StackHub owns."""

# Docker's default address pools hold about 30 bridge networks, so a Compose project per app
# would stop StackHub at about 30 apps. Each network an instance's project creates gets
# ``ipam: {config: [{subnet: ...}]}`` with a block of `SubnetPool` instead, chosen clear of
# every engine network (anyone's), of the host's IPv4 routes and of other instances' blocks.
# Blocks live in ``instance_subnets``; the instance row's delete frees them (ON DELETE CASCADE).
# A plan for an install holds its blocks in memory (`assign(hold=True)`) until the install is
# journaled (`commit`, in the instance row's transaction), given up (`release`) or HOLD_SECONDS
# pass (a refused consent, say), so concurrent installs never pick one block.

from __future__ import annotations

import bisect
import contextlib
import functools
import ipaddress
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackhub import labels
from stackhub.adapters.engine import Engine
from stackhub.adapters.routes import ROUTES, read_routes
from stackhub.config import SUBNET_POOL_ENV, SubnetPool
from stackhub.errors import Conflict, EngineUnavailable, Invalid
from stackhub.platform import substitute
from stackhub.state.db import Database

log = logging.getLogger(__name__)
Net = ipaddress.IPv4Network
Subnets = dict[str, list[str]]
"""network name (as the app names it: ``default``, ``backend``) -> its IPv4 subnets."""
OWN_DRIVERS = (None, "", "bridge")
"""Network drivers StackHub gives a subnet to (macvlan, ipvlan... are the app's business)."""
HOLD_SECONDS = 120.0
"""How long a plan's held subnets stay reserved if its install is never journaled."""


@functools.lru_cache(maxsize=8192)
def _net(text: str) -> Net:
    """Parse a stored IPv4 subnet once (ipaddress is slow; hundreds are read per plan)."""
    return Net(text, strict=False)


def host_routes(path: Path = ROUTES) -> list[Net]:
    """Return the host's IPv4 routes (the default route left out) from /proc/net/route."""
    return [r.network for r in read_routes(path) if r.network.prefixlen > 0]


def _parse(text: str, where: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Parse a subnet an app asks for, or raise Invalid naming where it was."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as err:
        raise Invalid(f"{where}: subnet {text!r} is not a valid network") from err


def project_networks(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the networks the project creates that StackHub gives a subnet, by name."""
    # Compose creates a network only if a service joins it: the implicit `default` for services
    # naming none, each one a service lists. Services with a network_mode (host, none, service:,
    # container:, bridge) join none; external networks and other drivers are the app's business.
    used: set[str] = set()
    for service in (compose.get("services") or {}).values():
        if not isinstance(service, dict) or service.get("network_mode") is not None:
            continue
        joined = service.get("networks")
        if joined is None:
            used.add("default")
        elif isinstance(joined, list | dict):
            used.update(str(name) for name in joined)
    declared = compose.get("networks") or {}
    found: dict[str, dict[str, Any]] = {}
    for name in sorted(used):
        spec = declared.get(name)
        if isinstance(spec, dict) and not spec.get("external") and \
                spec.get("driver") in OWN_DRIVERS:
            found[name] = spec
    return found


def _custom(spec: dict[str, Any], env: dict[str, str], where: str) -> list[Net]:
    """Return the IPv4 subnets the app sets itself in a network's ipam config."""
    ipam = spec.get("ipam")
    if ipam is None:
        return []
    if not isinstance(ipam, dict) or not isinstance(ipam.get("config") or [], list):
        raise Invalid(f"{where}: ipam must be a mapping whose config is a list")
    subnets: list[Net] = []
    for entry in ipam.get("config") or []:
        if isinstance(entry, dict) and entry.get("subnet"):
            subnet = _parse(substitute(str(entry["subnet"]), env), where)
            if isinstance(subnet, Net):
                subnets.append(subnet)
    return subnets


def _set_subnet(spec: dict[str, Any], subnet: Net) -> None:
    """Add StackHub's IPv4 subnet to a network's ipam config (IPv6 entries are kept)."""
    ipam = dict(spec.get("ipam") or {})
    ipam["config"] = [*(ipam.get("config") or []), {"subnet": str(subnet)}]
    spec["ipam"] = ipam


@dataclass(frozen=True)
class _Taken:
    """A range StackHub must not hand out, and who holds it (for messages)."""

    net: Net
    holder: str


class _Free:
    """Walk the pool's blocks in order, skipping every one that overlaps a taken range."""

    def __init__(self, pool: SubnetPool, taken: Iterable[_Taken]) -> None:
        """Sort the taken ranges as integer intervals."""
        self.pool = pool
        spans = sorted((int(t.net.network_address), int(t.net.broadcast_address))
                       for t in taken)
        self.starts = [s for s, _ in spans]
        self.ends = [e for _, e in spans]
        self.max_end: list[int] = []
        top = -1
        for end in self.ends:
            top = max(top, end)
            self.max_end.append(top)

    def clear(self, first: int, last: int) -> bool:
        """Tell whether no taken range overlaps [first, last]."""
        index = bisect.bisect_right(self.starts, last)  # ranges starting at or before `last`
        return index == 0 or self.max_end[index - 1] < first

    def add(self, net: Net) -> None:
        """Mark `net` taken too."""
        first, last = int(net.network_address), int(net.broadcast_address)
        index = bisect.bisect_right(self.starts, first)
        self.starts.insert(index, first)
        self.ends.insert(index, last)
        self.max_end.insert(index, 0)
        top = self.max_end[index - 1] if index else -1
        for pos in range(index, len(self.ends)):
            top = max(top, self.ends[pos])
            self.max_end[pos] = top

    def pick(self) -> Net | None:
        """Return the first free block of the pool, or None."""
        size = 1 << (32 - self.pool.prefix)
        base = int(self.pool.network.network_address)
        for number in range(self.pool.blocks):
            first = base + number * size
            if self.clear(first, first + size - 1):
                return Net((first, self.pool.prefix))
        return None


class SubnetAllocator:
    """Hand out, keep and check the subnets of instance networks (held, then stored)."""

    def __init__(self, db: Database, engine: Engine, pool: SubnetPool, *,
                 routes: Callable[[], list[Net]] = host_routes) -> None:
        """Use `db` for the table, `engine` for existing networks, `routes` for the host's."""
        self.db = db
        self.engine = engine
        self.pool = pool
        self.routes = routes
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[float, Subnets]] = {}
        self.busy: Callable[[], Mapping[str, Iterable[str]]] = dict
        """Instance -> container IPs the gateway dials (`ProxyService.dialled`): a block
        holding one goes to no other instance, even after that instance's rows are gone."""

    # -- reading what is taken -------------------------------------------------------------

    def stored(self, instance: str) -> Subnets:
        """Return the subnets kept for one instance."""
        found: Subnets = {}
        for row in self.db.query("SELECT network, subnet FROM instance_subnets WHERE "
                                 "instance = ? ORDER BY network, subnet", (instance,)):
            found.setdefault(str(row["network"]), []).append(str(row["subnet"]))
        return found

    def everyone(self) -> dict[str, Subnets]:
        """Return the stored subnets of every instance, by instance."""
        found: dict[str, Subnets] = {}
        for row in self.db.query("SELECT instance, network, subnet FROM instance_subnets "
                                 "ORDER BY instance, network, subnet"):
            found.setdefault(str(row["instance"]), {}).setdefault(
                str(row["network"]), []).append(str(row["subnet"]))
        return found

    def _others(self, instance: str) -> list[_Taken]:
        taken = [_Taken(_net(str(row["subnet"])), f"instance {row['instance']}")
                 for row in self.db.query("SELECT instance, subnet FROM instance_subnets "
                                          "WHERE instance != ?", (instance,))]
        for name, addresses in self.busy().items():
            if name != instance:
                taken += [_Taken(_net(f"{ip}/32"), f"the gateway's route to {name}")
                          for ip in addresses]
        now = time.monotonic()
        for name, (until, subnets) in list(self._pending.items()):
            if until < now:
                del self._pending[name]
            elif name != instance:
                taken += [_Taken(_net(s), f"instance {name} (being installed)")
                          for nets in subnets.values() for s in nets]
        return taken

    def _engine(self, project: str) -> tuple[list[_Taken], dict[str, list[Net]]]:
        """Return other engine networks' subnets, and the live subnets of `project`'s own."""
        taken: list[_Taken] = []
        own: dict[str, list[Net]] = {}
        try:
            networks = self.engine.all_networks()
        except EngineUnavailable:
            log.info("engine unreachable: choosing subnets without its networks")
            return taken, own  # planning works without an engine; the install will not
        for network in networks:
            nets: list[Net] = []
            for text in network.subnets:
                with contextlib.suppress(ValueError):  # the engine's own: never seen malformed
                    nets.append(_net(text))
            if network.labels.get(labels.COMPOSE_PROJECT) == project and \
                    network.name.startswith(project + "_"):
                own[network.name.removeprefix(project + "_")] = nets
            else:
                taken += [_Taken(n, f"network {network.name}") for n in nets]
        return taken, own

    # -- handing out ---------------------------------------------------------------------

    def assign(self, instance: str, compose: dict[str, Any], env: dict[str, str], *,
               hold: bool = False, save: bool = False) -> Subnets:
        """Put each network's subnet in the rendered `compose`; Conflict on a clash or full pool."""
        # The instance keeps its stored subnets (or its live networks', for instances installed
        # before StackHub chose subnets); other networks get the first free block of the pool.
        # A subnet the app sets is kept unless it overlaps an engine network or another
        # instance's. `hold` reserves the result for this plan's install; `save` stores it now.
        wanted = project_networks(compose)
        if not wanted:
            return {}
        project = labels.project_name(instance)
        with self._lock:
            others = self._others(instance)
            engine, own = self._engine(project)
            stored = self.stored(instance)
            result: Subnets = {}
            free: _Free | None = None
            for name, spec in wanted.items():
                where = f"networks.{name}"
                asked = _custom(spec, env, where)
                if asked:
                    for subnet in asked:
                        self._refuse_overlap(subnet, where, others + engine)
                        if free is not None:
                            free.add(subnet)
                    result[name] = [str(s) for s in asked]
                    continue
                kept = own.get(name) or [_net(s) for s in stored.get(name, [])]
                if kept and name not in own and \
                        any(kept[0].overlaps(t.net) for t in others + engine):
                    kept = []  # someone took it while the instance's network was down
                if kept:
                    chosen = kept[0]
                else:
                    if free is None:
                        free = _Free(self.pool, others + engine + self._routes() +
                                     [_Taken(_net(s), "this instance")
                                      for nets in result.values() for s in nets])
                    chosen = self._pick(free, name, instance)
                if free is not None:
                    free.add(chosen)
                _set_subnet(spec, chosen)
                result[name] = [str(chosen)]
            if hold:
                self._pending[instance] = (time.monotonic() + HOLD_SECONDS, result)
            if save:
                with self.db.transaction() as conn:
                    self._write(conn, instance, result)
        return result

    def _pick(self, free: _Free, name: str, instance: str) -> Net:
        found = free.pick()
        if found is None:
            raise Conflict(f"no free /{self.pool.prefix} left in {self.pool.network} for "
                           f"network {name!r} of {instance!r}; free some (remove instances or "
                           f"networks) or set {SUBNET_POOL_ENV} to a larger private range",
                           details={"pool": str(self.pool.network), "prefix": self.pool.prefix})
        return found

    def _routes(self) -> list[_Taken]:
        return [_Taken(r, f"host route {r}") for r in self.routes() if r.prefixlen > 0]

    def reassign(self, instance: str, compose: dict[str, Any]) -> Subnets:
        """Move networks whose block a network made elsewhere took first; return what moved."""
        # Only networks not on the engine whose stored block now overlaps another network move,
        # their ipam entry rewritten in `compose`; subnets the app set itself never move.
        with self._lock:
            stored = self.stored(instance)
            others = self._others(instance)
            engine, own = self._engine(labels.project_name(instance))
            moved: Subnets = {}
            free: _Free | None = None
            for name, spec in project_networks(compose).items():
                mine = stored.get(name, [])
                config = (spec.get("ipam") or {}).get("config") or []
                ours = [c for c in config if isinstance(c, dict) and c.get("subnet") in mine]
                if name in own or len(mine) != 1 or len(ours) != 1 or \
                        not any(_net(mine[0]).overlaps(t.net) for t in others + engine):
                    continue
                if free is None:
                    free = _Free(self.pool, others + engine + self._routes() +
                                 [_Taken(_net(s), "this instance")
                                  for nets in stored.values() for s in nets])
                chosen = self._pick(free, name, instance)
                free.add(chosen)
                ours[0]["subnet"] = str(chosen)
                moved[name] = stored[name] = [str(chosen)]
            if moved:
                with self.db.transaction() as conn:
                    self._write(conn, instance, stored)
        return moved

    @staticmethod
    def _refuse_overlap(subnet: Net, where: str, taken: list[_Taken]) -> None:
        for item in taken:
            if subnet.overlaps(item.net):
                raise Conflict(f"{where}: subnet {subnet} overlaps {item.holder} "
                               f"({item.net}); choose another subnet for this network or "
                               "remove the ipam subnet to let StackHub pick one",
                               details={"subnet": str(subnet), "clash": str(item.net),
                                        "holder": item.holder})

    def _write(self, conn: sqlite3.Connection, instance: str, subnets: Subnets) -> None:
        conn.execute("DELETE FROM instance_subnets WHERE instance = ?", (instance,))
        conn.executemany("INSERT INTO instance_subnets (instance, network, subnet) "
                         "VALUES (?, ?, ?)",
                         [(instance, network, subnet) for network, nets in subnets.items()
                          for subnet in nets])

    def commit(self, conn: sqlite3.Connection, instance: str, subnets: Subnets) -> None:
        """Store a held plan's subnets in the caller's transaction (the instance row's)."""
        self._write(conn, instance, subnets)
        self.release(instance, subnets)

    def release(self, instance: str, subnets: Subnets) -> None:
        """Drop what a plan held, if that plan still holds it."""
        with self._lock:
            held = self._pending.get(instance)
            if held is not None and held[1] is subnets:
                del self._pending[instance]
