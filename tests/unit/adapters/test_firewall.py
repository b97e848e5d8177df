"""The pool's firewall rule: checked, added once, and every refusal told, never raised."""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
from collections.abc import Sequence

import pytest

from stackhub.adapters.firewall import CHAIN, Firewall, rule
from stackhub.apps.fence import PoolFence
from stackhub.config import SubnetPool
from stackhub.events import Event, EventBus

POOL = ipaddress.IPv4Network("10.231.0.0/16")


class Iptables:
    """Answers like iptables: -C fails until -I ran; optional refusals."""

    def __init__(self, *, chain: bool = True, refuse: str = "") -> None:
        self.calls: list[list[str]] = []
        self.rules: list[list[str]] = []
        self.chain = chain
        self.refuse = refuse

    def __call__(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        args = list(args)
        self.calls.append(args)
        verb, body = args[3], args[5:] if args[3] == "-I" else args[4:]
        if not self.chain:
            return subprocess.CompletedProcess(args, 1, "", "iptables: No chain/target/match "
                                                           "by that name.")
        if verb == "-C":
            return subprocess.CompletedProcess(args, 0 if body[1:] in self.rules else 1, "",
                                               "iptables: Bad rule")
        if self.refuse:
            return subprocess.CompletedProcess(args, 2, "", self.refuse)
        self.rules.append(body[1:])
        return subprocess.CompletedProcess(args, 0, "", "")


def test_the_rule_drops_only_untranslated_packets_from_outside_the_bridges() -> None:
    assert rule(POOL) == ["-d", "10.231.0.0/16", "!", "-i", "br-+", "-m", "conntrack", "!",
                          "--ctstate", "DNAT", "-m", "comment", "--comment",
                          "stackhub: app containers only through published ports", "-j", "DROP"]


def test_the_rule_is_added_once_at_the_top_of_docker_user() -> None:
    tables = Iptables()
    wall = Firewall(binary="/usr/sbin/iptables", run=tables, root=lambda: True)
    assert wall.guard(POOL) is None
    assert tables.calls[1] == ["/usr/sbin/iptables", "-w", "10", "-I", CHAIN, "1", *rule(POOL)]
    assert wall.guard(POOL) is None  # present: checked, not added again
    assert [c[3] for c in tables.calls] == ["-C", "-I", "-C"] and len(tables.rules) == 1


def test_every_reason_not_to_guard_is_told() -> None:
    assert Firewall(binary="/x", run=Iptables(), root=lambda: False).guard(POOL) == \
        "StackHub does not run as root"
    assert Firewall(run=Iptables(), root=lambda: True, which=lambda name: None).guard(POOL) \
        == "iptables is not installed"
    missing = Firewall(binary="/x", run=Iptables(chain=False), root=lambda: True).guard(POOL)
    assert missing is not None and "DOCKER-USER chain is missing" in missing
    refused = Firewall(binary="/x", run=Iptables(refuse="Permission denied (you must be root)"),
                       root=lambda: True).guard(POOL)
    assert refused == "iptables refused the rule: Permission denied (you must be root)"

    def broken(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(list(args), 20)

    timed = Firewall(binary="/x", run=broken, root=lambda: True).guard(POOL)
    assert timed is not None and timed.startswith("iptables failed")


async def test_the_fence_applies_at_start_and_after_each_engine_start() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    tables = Iptables(chain=False)  # the engine is not up yet: no DOCKER-USER
    fence = PoolFence(bus, SubnetPool(POOL, 26), Firewall(binary="/x", run=tables,
                                                          root=lambda: True), enabled=True)
    await fence.start()
    try:
        assert fence.reason is not None and "missing" in fence.reason
        tables.chain = True  # Docker started and made its chain
        bus.publish(Event("engine", "engine", "up", {}))
        for _ in range(2000):
            if fence.reason is None:
                break
            await asyncio.sleep(0.01)
        assert fence.reason is None and tables.rules == [rule(POOL)]
    finally:
        await fence.stop()


async def test_a_disabled_fence_never_runs_iptables() -> None:
    tables = Iptables()
    fence = PoolFence(EventBus(), SubnetPool(POOL, 26), Firewall(binary="/x", run=tables,
                                                                 root=lambda: True),
                      enabled=False)
    await fence.start()
    await fence.apply()
    await fence.stop()
    assert tables.calls == []


def test_the_switch_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACKHUB_FIREWALL", "0")
    assert not PoolFence(EventBus(), SubnetPool(POOL, 26)).enabled
    monkeypatch.setenv("STACKHUB_FIREWALL", "")
    assert PoolFence(EventBus(), SubnetPool(POOL, 26)).enabled
