"""DNS records written by StackHub through lexicon's route53 provider into moto's Route 53.

moto's server (moto 5, as the S3 server of test_backup.py) runs on a loopback port; the
StackHub server reaches it through boto3's standard endpoint setting in its own environment
(``AWS_ENDPOINT_URL_ROUTE_53``, operator-only: a provider credential set cannot carry it).
Records are read back with boto3's ``list_resource_record_sets``. A second moto server that
enforces IAM signatures answers a wrong key. Run under ``flock /tmp/stackhub-gateway.lock``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import httpx
import pytest

from stackhub.adapters import dnsrecords
from stackhub.errors import DnsProviderRefused
from tests.integration.conftest import Server, free_port
from tests.integration.gateway_env import (
    AcmeLab,
    gateway_server,
    running_lab,
    serving_address,
)

pytestmark = pytest.mark.integration
ZONE = "r53.test"
KEY_ID = "AKIASTACKHUBH5TEST01"
SECRET = "stackhub-h5-route53-secret"


class Moto:
    """moto's server on a loopback port with one public hosted zone, ZONE."""

    def __init__(self, folder: Path, *, enforce_auth: bool = False) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        if enforce_auth:  # the zone's creation is the one unsigned action; then keys count
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "1"
        binary = Path(sys.executable).parent / "moto_server"
        self.proc = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(self.port)],
                                     env=env, stdout=subprocess.DEVNULL,
                                     stderr=(folder / "moto.log").open("ab"))
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                break
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, \
                    "moto_server did not start"
                time.sleep(0.1)
        self.client: Any = boto3.client(
            "route53", endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
        self.zone_id = self.client.create_hosted_zone(
            Name=ZONE, CallerReference=f"stackhub-h5-{self.port}")["HostedZone"]["Id"]

    def env(self) -> dict[str, str]:
        """The server's environment naming this endpoint (boto3's standard variables)."""
        return {"AWS_ENDPOINT_URL_ROUTE_53": self.url, "AWS_DEFAULT_REGION": "us-east-1"}

    def records(self) -> dict[tuple[str, str], list[str]]:
        """Return {(name without the dot, type): [values]} of the zone, NS and SOA left out."""
        sets = self.client.list_resource_record_sets(HostedZoneId=self.zone_id)
        return {(r["Name"].rstrip(".").replace("\\052", "*"), r["Type"]):
                sorted(v["Value"] for v in r.get("ResourceRecords", []))
                for r in sets["ResourceRecordSets"] if r["Type"] not in ("NS", "SOA")}

    def stored(self) -> list[tuple[str, str]]:
        """Return the zone's record sets as moto holds them (no signed request needed)."""
        data = httpx.get(f"{self.url}/moto-api/data.json", timeout=10).json()
        return sorted((r["name"], r["type"]) for r in data["route53"]["RecordSet"])

    def stop(self) -> None:
        """Stop moto."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """An open moto (any key is accepted) for this module."""
    server = Moto(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def strict_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """A moto that checks every request's key and signature (IAM enforced)."""
    server = Moto(tmp_path_factory.mktemp("moto-strict"), enforce_auth=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeLab]:
    """Pebble and its DNS (the gateway lab of gateway_env)."""
    yield from running_lab(tmp_path_factory)


@pytest.fixture(scope="module")
def address_page() -> Iterator[ThreadingHTTPServer]:
    """A local page answering with the box's 'public' address."""
    yield from serving_address("203.0.113.20")


def _wait_for(moto: Moto, wanted: dict[tuple[str, str], list[str]],
              timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while moto.records() != wanted:
        assert time.monotonic() < deadline, f"moto holds {moto.records()}, wanted {wanted}"
        time.sleep(0.5)


def _add_while_propagating(lab: AcmeLab, moto: Moto, server: Server,
                           name: str) -> subprocess.CompletedProcess[str]:
    """`domain add` of a name nothing resolves yet (the lab's DNS answers no default address
    meanwhile): once StackHub has written its CNAME at Route 53, the lab's DNS answers for it,
    as the record's propagation would (the lab's DNS does not read Route 53)."""
    lab.dns("set-default-ipv4", ip="")
    done = threading.Event()

    def propagate() -> None:
        while not done.wait(0.2):
            if (name, "CNAME") in moto.records():
                lab.dns("add-a", host=f"{name}.", addresses=["127.0.0.1"])
                return

    mirror = threading.Thread(target=propagate, daemon=True)
    mirror.start()
    try:
        return server.cli("domain", "add", "web", name)
    finally:
        done.set()
        mirror.join(10)
        lab.dns("set-default-ipv4", ip="127.0.0.1")


def test_the_server_keeps_route53_records(moto: Moto, lab: AcmeLab,
                                          address_page: ThreadingHTTPServer,
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    env = {**lab.env(), **moto.env(), "STACKHUB_PUBLIC_IP_EVERY": "1",
           "STACKHUB_PUBLIC_IP_URL": f"http://127.0.0.1:{address_page.server_address[1]}/"}
    with gateway_server(tmp_path_factory.mktemp("route53"), env) as server:
        result = server.cli("domain", "provider", "set", "route53", "--zone", ZONE,
                            "--env", f"AWS_ACCESS_KEY_ID={KEY_ID}",
                            "--env", "AWS_SECRET_ACCESS_KEY", "--json",
                            AWS_SECRET_ACCESS_KEY=SECRET)
        assert result.returncode == 0, result.stderr + result.stdout
        assert SECRET not in result.stdout
        assert json.loads(result.stdout)["records"] is True
        home, lan = f"home.{ZONE}", f"lan.{ZONE}"
        base = server.cli("domain", "base", home, "--tls", "internal", "--json")
        assert base.returncode == 0, base.stderr + base.stdout
        _wait_for(moto, {(home, "A"): ["203.0.113.20"], (f"*.{home}", "A"): ["203.0.113.20"]})
        # a custom domain inside the provider's zone (outside the base): `domain add` writes
        # its CNAME itself (nobody created it), then checks DNS and gets the certificate
        assert (f"shop.{ZONE}", "CNAME") not in moto.records()
        added = _add_while_propagating(lab, moto, server, f"shop.{ZONE}")
        assert added.returncode == 0, added.stderr + added.stdout
        assert moto.records()[(f"shop.{ZONE}", "CNAME")] == [f"web.{home}"]
        _wait_for(moto, {(home, "A"): ["203.0.113.20"], (f"*.{home}", "A"): ["203.0.113.20"],
                         (f"shop.{ZONE}", "CNAME"): [f"web.{home}"]})
        # the public address changes: the A records follow, the CNAME stays
        address_page.address = "203.0.113.21"  # type: ignore[attr-defined]
        _wait_for(moto, {(home, "A"): ["203.0.113.21"], (f"*.{home}", "A"): ["203.0.113.21"],
                         (f"shop.{ZONE}", "CNAME"): [f"web.{home}"]})
        synced = server.cli("domain", "records", "--sync", "--json")
        assert synced.returncode == 0, synced.stderr + synced.stdout
        read = json.loads(synced.stdout)
        assert read["error"] is None and all(r["published"] for r in read["records"])
        assert SECRET not in synced.stdout
        # a new base: its records are written, the old base's deleted, the CNAME re-pointed
        rebased = server.cli("domain", "base", lan, "--tls", "internal", "--json")
        assert rebased.returncode == 0, rebased.stderr + rebased.stdout
        _wait_for(moto, {(lan, "A"): ["203.0.113.21"], (f"*.{lan}", "A"): ["203.0.113.21"],
                         (f"shop.{ZONE}", "CNAME"): [f"web.{lan}"]})
        # removing the domain deletes the CNAME StackHub created
        removed = server.cli("domain", "remove", "web", f"shop.{ZONE}")
        assert removed.returncode == 0, removed.stderr + removed.stdout
        assert (f"shop.{ZONE}", "CNAME") not in moto.records()


def test_a_wrong_key_is_refused_clearly_and_changes_nothing(strict_moto: Moto) -> None:
    before = strict_moto.stored()
    zone = dnsrecords.Zone("route53", {"AWS_ACCESS_KEY_ID": "AKIANOSUCHKEY0000000",
                                       "AWS_SECRET_ACCESS_KEY": SECRET}, ZONE)
    os.environ.update(strict_moto.env())  # boto3 reads the endpoint when lexicon's client is made
    try:
        with pytest.raises(DnsProviderRefused, match=r"refused setting A \*\.r53\.test: .*"
                           r"InvalidClientTokenId.*HTTP 403: the provider did not accept "
                           r"the credentials") as caught:
            asyncio.run(dnsrecords.replace(zone, f"*.{ZONE}", "A", ("203.0.113.30",)))
    finally:
        for key in strict_moto.env():
            os.environ.pop(key, None)
    assert SECRET not in caught.value.message
    assert strict_moto.stored() == before and (f"*.{ZONE}.", "A") not in before
