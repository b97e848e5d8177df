"""Instance networks on the real engine: more apps than Docker's default pools hold, and clashes.

The engine started by scripts/test keeps Docker's default address pools (about 30 bridge
networks), so 40 instances running proves StackHub's own subnets are what makes room.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Server, docker

pytestmark = pytest.mark.integration

IMAGE = os.environ.get("STACKHUB_TEST_IMAGE", "stackhub-test/web:1")
COUNT = 40
POOL = ipaddress.IPv4Network("10.231.0.0/16")
COMPOSE = f"services:\n  web:\n    image: {IMAGE}\n    stop_grace_period: 1s\n"
TEST_LABEL = "io.stackhub-test.networks"


def _ids(*args: str) -> list[str]:
    return [line for line in docker(*args).stdout.split() if line]


def wipe(install: str) -> None:
    """Remove every container and network of one data root's installation, in bulk."""
    containers = _ids("ps", "-aq", "--filter", f"label=io.stackhub.install={install}")
    if containers:
        docker("rm", "-f", "-v", *containers, check=False)
    networks = _ids("network", "ls", "-q", "--filter", f"label=io.stackhub.install={install}")
    networks += _ids("network", "ls", "-q", "--filter", f"label={TEST_LABEL}")
    if networks:
        docker("network", "rm", *networks, check=False)


@pytest.fixture
def many(tmp_path: Path) -> Iterator[Server]:
    """A server whose engine objects are removed in bulk afterwards (40 compose downs are slow)."""
    srv = Server(tmp_path / "data")
    srv.start()
    install = (srv.data_dir / "install-id").read_text().strip()
    try:
        yield srv
    finally:
        srv.stop()
        wipe(install)


def network_subnets(name: str) -> list[str]:
    """Return a network's IPAM subnets ([] if it was removed since it was listed: other tests
    share this engine and remove their networks at any moment)."""
    done = docker("network", "inspect", "--format", "{{json .IPAM.Config}}", name, check=False)
    if done.returncode != 0:
        if any(text in done.stderr.lower() for text in ("no such network", "not found")):
            return []
        raise AssertionError(f"docker network inspect {name}: {done.stderr}")
    return [entry["Subnet"] for entry in json.loads(done.stdout) or []]


def test_more_instances_than_the_default_pools_hold_all_run(many: Server) -> None:
    pools = json.loads(docker("info", "--format", "{{json .DefaultAddressPools}}").stdout
                       or "null") or []
    assert all(int(p["Size"]) <= 20 for p in pools), (
        f"this engine has small default address pools ({pools}, from /etc/docker/daemon.json: "
        "scripts/up sets them); the test engine must keep Docker's defaults to prove anything")
    started = time.monotonic()
    names = [f"net-{i:02d}" for i in range(COUNT)]
    for name in names:
        response = many.api("POST", "/api/instances", json={
            "source": {"kind": "compose", "compose": COMPOSE}, "name": name})
        assert response.status_code == 202, response.text
    deadline = time.monotonic() + 150
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        listed = many.api("GET", "/api/instances").json()
        states = {i["name"]: i["status"] for i in listed}
        if all(states.get(n) in ("running", "failed", "interrupted") for n in names):
            break
        time.sleep(1)
    failed = {n: s for n, s in states.items() if s != "running"}
    errors = {n: many.api("GET", f"/api/instances/{n}").json().get("error") for n in failed}
    assert not failed, f"not running: {errors}"
    assert sorted(states) == names

    install = (many.data_dir / "install-id").read_text().strip()
    running = _ids("ps", "-q", "--filter", "status=running", "--filter",
                   f"label=io.stackhub.install={install}")
    assert len(running) == COUNT
    subnets = [ipaddress.IPv4Network(s) for n in names
               for s in network_subnets(f"stackhub-{n}_default")]
    assert len(subnets) == COUNT
    assert all(s.subnet_of(POOL) and s.prefixlen == 26 for s in subnets)
    assert len(set(subnets)) == COUNT, "every instance has its own block"
    # the compose files say so too, and removing an instance frees its block
    text = (many.data_dir / "instances" / "net-00" / "compose.yaml").read_text()
    assert f"subnet: {subnets[0]}" in text
    op = many.api("DELETE", "/api/instances/net-00").json()["operation"]["id"]
    assert many.wait_operation(op)["state"] == "succeeded"
    with contextlib.closing(sqlite3.connect(many.data_dir / "stackhub.db")) as db:
        rows = db.execute("SELECT instance FROM instance_subnets").fetchall()
    assert sorted(r[0] for r in rows) == names[1:], "the removed instance's block is free"
    plan = many.api("POST", "/api/plans", json={
        "source": {"kind": "compose", "compose": COMPOSE}, "name": "net-again"}).json()
    (again,) = plan["subnets"]["default"]
    # first fit: the freed block, or a lower one freed meanwhile; a higher one only if another
    # server sharing this engine took the freed block in between
    live = [ipaddress.ip_network(s) for n in _ids("network", "ls", "-q")
            for s in network_subnets(n)]
    assert ipaddress.IPv4Network(again) <= subnets[0] or any(subnets[0].overlaps(n)
                                                              for n in live)
    print(f"{COUNT} instances running in {time.monotonic() - started:.1f} s")


def first_free_block() -> ipaddress.IPv4Network:
    """Return the block of the pool StackHub would hand out next on this engine."""
    used = [ipaddress.ip_network(s) for n in _ids("network", "ls", "-q")
            for s in network_subnets(n)]
    return next(b for b in POOL.subnets(new_prefix=26)
                if not any(b.overlaps(u) for u in used))


def test_a_subnet_clash_is_refused_before_anything_is_created(many: Server) -> None:
    taken = f"stackhub-test-clash-{uuid.uuid4().hex[:8]}"
    block = first_free_block()  # someone else's network takes the next block of the pool
    docker("network", "create", "--label", f"{TEST_LABEL}=1", "--subnet", str(block), taken)
    inside = next(block.subnets(new_prefix=27))
    clashing = COMPOSE.replace("    stop_grace_period: 1s\n", "    networks: [back]\n") + (
        f"networks:\n  back:\n    ipam:\n      config:\n        - subnet: {inside}\n")
    response = many.api("POST", "/api/instances", json={
        "source": {"kind": "compose", "compose": clashing}, "name": "clash"})
    assert response.status_code == 409, response.text
    message = response.json()["error"]["message"]
    assert f"subnet {inside} overlaps network {taken} ({block})" in message
    assert many.api("GET", "/api/instances/clash").status_code == 404
    assert not (many.data_dir / "instances" / "clash").exists()
    assert docker("ps", "-aq", "--filter", "label=io.stackhub.instance=clash").stdout == ""
    # no network of the refused instance (other tests sharing the engine make their own)
    assert _ids("network", "ls", "-q", "--filter", "name=stackhub-clash_") == []
    assert _ids("network", "ls", "-q", "--filter", "label=io.stackhub.instance=clash") == []
    ops = many.api("GET", "/api/operations", params={"instance": "clash"}).json()
    assert ops["items"] == [], "nothing was journaled"

    # an app that leaves the subnet to StackHub gets a block clear of that network, and runs
    response = many.api("POST", "/api/instances", json={
        "source": {"kind": "compose", "compose": COMPOSE}, "name": "clear"})
    assert response.status_code == 202, response.text
    assert many.wait_operation(response.json()["operation"]["id"])["state"] == "succeeded"
    (subnet,) = network_subnets("stackhub-clear_default")
    assert ipaddress.IPv4Network(subnet).subnet_of(POOL)
    assert not ipaddress.IPv4Network(subnet).overlaps(block)
