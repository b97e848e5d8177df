"""Host port allocation: keep free defaults, move taken ones, refuse taken explicit ports."""

from __future__ import annotations

import socket

import pytest

from stackhub.apps import ports
from stackhub.apps.ports import PortAllocator
from stackhub.catalog.models import Parameter, ParameterType
from stackhub.errors import Conflict, Invalid

REAL_HOST_PORT_FREE = ports.host_port_free


def port_param(name: str = "WEB_PORT", protocol: str = "tcp") -> Parameter:
    return Parameter(name=name, type=ParameterType.PORT, protocol=protocol)


def allocator(held: dict[int, str] | None = None, busy: set[int] | None = None) -> PortAllocator:
    taken = busy or set()
    return PortAllocator(held or {}, free=lambda port, protocol="tcp": port not in taken)


def test_free_default_is_kept() -> None:
    alloc = allocator()
    assert alloc.pick(port_param(), 8080, False) == 8080
    assert alloc.claimed == {8080}


def test_taken_default_is_moved_to_the_next_free_port() -> None:
    alloc = allocator(busy={8080, 8081})
    assert alloc.pick(port_param(), 8080, False) == 8082


def test_explicitly_requested_taken_port_is_a_conflict() -> None:
    alloc = allocator(busy={8080})
    with pytest.raises(Conflict, match="host port 8080/tcp for WEB_PORT is already in use by "
                       "another program") as info:
        alloc.pick(port_param(), 8080, True)
    assert info.value.details == {"port": 8080, "parameter": "WEB_PORT"}


def test_explicit_port_held_by_an_instance_names_it() -> None:
    alloc = allocator(held={8080: "instance wiki"})
    with pytest.raises(Conflict, match="by instance wiki"):
        alloc.pick(port_param(), 8080, True)


def test_ports_held_by_other_instances_are_skipped() -> None:
    alloc = allocator(held={8080: "instance wiki", 8081: "container x"})
    assert alloc.pick(port_param(), 8080, False) == 8082


def test_no_wanted_port_starts_at_8000() -> None:
    assert allocator(busy={8000}).pick(port_param(), None, False) == 8001


def test_two_parameters_never_get_the_same_port() -> None:
    alloc = allocator()
    first = alloc.pick(port_param("A"), 8080, False)
    second = alloc.pick(port_param("B"), 8080, False)
    assert (first, second) == (8080, 8081)


def test_privileged_and_ephemeral_ranges_are_skipped() -> None:
    alloc = allocator(busy={500})
    assert alloc.pick(port_param(), 500, False) == 1024
    alloc = allocator(busy={59500})
    assert alloc.pick(port_param(), 59500, False) == 61000


def test_no_free_port_is_a_conflict() -> None:
    alloc = PortAllocator({}, free=lambda port, protocol="tcp": False)
    with pytest.raises(Conflict, match="no free host port"):
        alloc.pick(port_param(), 8080, False)


@pytest.mark.parametrize("default", [40000, 65535])
def test_taken_default_high_up_is_still_moved(default: int) -> None:
    port = allocator(busy={default}).pick(port_param(), default, False)
    assert port != default


def test_protocol_is_passed_to_the_host_check() -> None:
    seen: list[tuple[int, str]] = []

    def free(port: int, protocol: str = "tcp") -> bool:
        seen.append((port, protocol))
        return True

    PortAllocator({}, free=free).pick(port_param(protocol="udp"), 5353, False)
    assert seen == [(5353, "udp")]


# -- fixed published ports of the rendered project ---------------------------------------------

def test_check_published_accepts_free_and_claimed_ports() -> None:
    probed: list[tuple[int, str]] = []

    def free(port: int, protocol: str = "tcp") -> bool:
        probed.append((port, protocol))
        return port != 9000

    alloc = PortAllocator({}, free=free)
    assert alloc.pick(port_param(), 8080, False) == 8080
    probed.clear()
    assert alloc.check_published([(8080, "tcp", "web"), (9100, "tcp", "web")]) is None
    assert probed == [(9100, "tcp")]  # the plan's own port is not probed again, a new one is
    with pytest.raises(Conflict):  # and the same check does refuse a taken one
        alloc.check_published([(9000, "tcp", "web")])


def test_check_published_refuses_taken_ports() -> None:
    with pytest.raises(Conflict, match=r"host port 9000/tcp \(service web\) is already in use"):
        allocator(busy={9000}).check_published([(9000, "tcp", "web")])
    with pytest.raises(Conflict, match="by instance wiki"):
        allocator(held={9000: "instance wiki"}).check_published([(9000, "tcp", "web")])


def test_check_published_refuses_duplicates_in_one_project() -> None:
    with pytest.raises(Conflict, match="published twice"):
        allocator().check_published([(9000, "tcp", "web"), (9000, "tcp", "api")])
    allocator().check_published([(53, "tcp", "dns"), (53, "udp", "dns")])


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_check_published_refuses_out_of_range(port: int) -> None:
    with pytest.raises(Invalid, match="out of range"):
        allocator().check_published([(port, "tcp", "web")])


# -- the real host probe (the autouse fixture replaces the module global after import) -------

def test_host_port_free_sees_a_listening_socket() -> None:
    real = REAL_HOST_PORT_FREE
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        assert real(port) is False
    assert real(port) is True
