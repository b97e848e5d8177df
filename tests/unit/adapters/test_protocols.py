"""The adapters' typed faces: fakes and real adapters implement the same Protocols, and the
records read what Compose 2.40 and the Engine API print (samples taken from real runs).

`mypy src` also checks the fakes against the Protocols (the TYPE_CHECKING block at the end of
adapters/fakes.py); the annotated assignments here say the same for a type-checked test run.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest

from stackhub.adapters.compose import (
    Compose,
    ComposeCli,
    ComposeContainer,
    ResolvedProject,
    parse_ps,
)
from stackhub.adapters.engine import DockerEngine, Engine, InventoryEngine
from stackhub.adapters.fakes import FakeCompose, FakeEngine
from stackhub.errors import EngineError


def _members(protocol: type) -> list[str]:
    """Return the public methods a Protocol (with its bases) declares."""
    found: set[str] = set()
    for cls in protocol.__mro__:
        if cls.__module__.startswith("stackhub."):
            found |= {name for name, value in vars(cls).items()
                      if callable(value) and not name.startswith("_")}
    return sorted(found)


IMPLEMENTATIONS: list[tuple[type, type]] = [
    (Compose, ComposeCli), (Compose, FakeCompose), (Engine, DockerEngine), (Engine, FakeEngine),
    (InventoryEngine, DockerEngine), (InventoryEngine, FakeEngine)]


def test_fakes_and_adapters_are_instances_of_the_protocols() -> None:
    fake_compose: Compose = FakeCompose()
    real_compose: Compose = ComposeCli(argv=["docker-compose"])
    fake_engine: Engine = FakeEngine()
    inventory: InventoryEngine = fake_engine
    real_engine: Engine = DockerEngine()  # connects lazily: nothing is reached here
    for obj, protocol in ((fake_compose, Compose), (real_compose, Compose),
                          (fake_engine, Engine), (inventory, InventoryEngine),
                          (real_engine, Engine)):
        assert isinstance(obj, protocol)
    assert not isinstance(fake_compose, ComposeCli)  # the fake is no subclass of the real one
    assert not isinstance(object(), Compose) and not isinstance(object(), InventoryEngine)
    assert set(_members(InventoryEngine)) < set(_members(Engine))


@pytest.mark.parametrize(("protocol", "impl"), IMPLEMENTATIONS,
                         ids=lambda c: c.__name__)
def test_signatures_match_the_protocol(protocol: type, impl: type) -> None:
    """Same parameters (an implementation may add optional ones), same return, same kind."""
    for name in _members(protocol):
        wanted, got = getattr(protocol, name), getattr(impl, name)
        assert inspect.iscoroutinefunction(wanted) == inspect.iscoroutinefunction(got), name
        want_sig, got_sig = inspect.signature(wanted), inspect.signature(got)
        want_params = list(want_sig.parameters.values())
        got_params = list(got_sig.parameters.values())
        assert [(p.name, p.kind, p.default) for p in want_params] == \
            [(p.name, p.kind, p.default) for p in got_params[:len(want_params)]], name
        assert all(p.default is not p.empty for p in got_params[len(want_params):]), name
        assert want_sig.return_annotation == got_sig.return_annotation, name


# -- compose config ---------------------------------------------------------------------------

# `docker compose -p probe config --format json` (2.40.3) of a project using most risky options
CONFIG = {
    "configs": {"c": {"name": "probe_c", "file": "/tmp/probe/c.txt"}},
    "name": "probe",
    "networks": {"default": {"name": "probe_default", "ipam": {}}},
    "secrets": {"s": {"name": "probe_s", "file": "/tmp/probe/s.txt"}},
    "services": {
        "db": {"command": None, "entrypoint": None, "image": "busybox", "network_mode": "host",
               "depends_on": {"init": {"condition": "service_completed_successfully",
                                       "required": True}}},
        "init": {"command": None, "entrypoint": None, "image": "busybox",
                 "networks": {"default": None}},
        "web": {
            "cap_add": ["NET_ADMIN"], "command": None, "configs": [{"source": "c"}],
            "depends_on": {"init": {"condition": "service_started", "required": True}},
            "devices": [{"source": "/dev/null", "target": "/dev/null", "permissions": "rwm"}],
            "entrypoint": None, "image": "busybox", "networks": {"default": None}, "pid": "host",
            "ports": [{"mode": "ingress", "target": 80, "published": "18080", "protocol": "tcp"},
                      {"mode": "ingress", "target": 81, "protocol": "tcp"}],
            "privileged": True, "secrets": [{"source": "s", "target": "/run/secrets/s"}],
            "security_opt": ["seccomp:unconfined"],
            "volumes": [{"type": "bind", "source": "/tmp/probe/x", "target": "/x",
                         "read_only": True, "bind": {"create_host_path": True}},
                        {"type": "volume", "source": "named", "target": "/n", "volume": {}}],
            "volumes_from": ["container:abc"]}},
    "volumes": {"named": {"name": "probe_named",
                          "driver_opts": {"device": "/etc", "o": "bind", "type": "none"}}},
}


def test_resolved_project_types_what_stackhub_reads() -> None:
    project = ResolvedProject.parse(CONFIG)
    assert project.name == "probe" and list(project.services) == ["db", "init", "web"]
    web = project.services["web"]
    assert web.image == "busybox" and web.privileged and web.pid == "host"
    assert [(p.target, p.published, p.protocol) for p in web.ports] == [
        (80, "18080", "tcp"), (81, None, "tcp")]
    assert [(v.type, v.source, v.read_only) for v in web.volumes] == [
        ("bind", "/tmp/probe/x", True), ("volume", "named", False)]
    assert [d.source for d in web.devices] == ["/dev/null"]
    assert web.secrets == ["s"] and web.configs == ["c"] and web.networks == ["default"]
    assert web.cap_add == ["NET_ADMIN"] and web.volumes_from == ["container:abc"]
    assert project.services["db"].network_mode == "host"
    assert project.services["db"].depends_on["init"].condition == \
        "service_completed_successfully"
    assert project.volumes["named"].driver_opts["device"] == "/etc"
    assert project.secrets["s"].file == "/tmp/probe/s.txt"
    assert project.networks["default"].name == "probe_default"
    assert project.raw == CONFIG  # the whole tree, for the consent digest


def test_short_forms_and_empty_sections_are_read_too() -> None:
    # older Compose printed devices as strings; hand-made models leave sections out or null
    project = ResolvedProject.parse({"services": {"a": {
        "devices": ["/dev/snd:/dev/snd:r"], "secrets": ["tok"], "depends_on": ["b"],
        "networks": ["front"], "ports": None}, "b": None}, "volumes": None,
        "networks": {"front": None}})
    a = project.services["a"]
    assert (a.devices[0].source, a.devices[0].permissions) == ("/dev/snd", "r")
    assert a.secrets == ["tok"] and a.networks == ["front"] and a.ports == []
    assert a.depends_on["b"].condition == "service_started"
    assert project.services["b"].image is None and project.volumes == {}
    assert project.networks["front"].external is False
    assert ResolvedProject().services == {} and ResolvedProject().raw == {}


def test_a_model_of_another_shape_is_an_engine_error() -> None:
    with pytest.raises(EngineError, match=r"services\.web\.ports"):
        ResolvedProject.parse({"services": {"web": {"ports": "80:80"}}})


# -- compose ps -------------------------------------------------------------------------------

PS_WEB = {"Command": '"httpd -f -p 80 -h /…"', "CreatedAt": "2026-12-02 19:38:29 +0000 UTC",
          "ExitCode": 0, "Health": "", "ID": "e2a95b8349e9", "Image": "stackhub-test/web:1",
          "Labels": "com.docker.compose.project=shprobe,com.docker.compose.service=web",
          "LocalVolumes": "0", "Mounts": "", "Name": "shprobe-web-1", "Names": "shprobe-web-1",
          "Networks": "shprobe_default", "Ports": "127.0.0.1:18089->80/tcp",
          "Project": "shprobe",
          "Publishers": [{"URL": "127.0.0.1", "TargetPort": 80, "PublishedPort": 18089,
                          "Protocol": "tcp"}],
          "RunningFor": "3 seconds ago", "Service": "web", "Size": "0B", "State": "running",
          "Status": "Up 2 seconds"}
PS_JOB = {**PS_WEB, "ID": "be60ff71ccaf", "Name": "shprobe-job-1", "Service": "job",
          "Publishers": None, "State": "exited", "Status": "Exited (3) 2 seconds ago",
          "ExitCode": 3, "Health": "unhealthy"}


@pytest.mark.parametrize("layout", ["lines", "array"])
def test_ps_rows_become_typed_containers(layout: str) -> None:
    rows: list[dict[str, Any]] = [PS_WEB, PS_JOB]
    out = ("\n".join(json.dumps(r) for r in rows) if layout == "lines" else json.dumps(rows))
    web, job = parse_ps(out + "\n")
    assert web == ComposeContainer(
        id="e2a95b8349e9", name="shprobe-web-1", service="web", project="shprobe",
        image="stackhub-test/web:1", state="running", status="Up 2 seconds", health=None,
        exit_code=0, publishers=web.publishers)
    assert [(p.url, p.published_port, p.target_port, p.protocol) for p in web.publishers] == [
        ("127.0.0.1", 18089, 80, "tcp")]
    assert (job.state, job.exit_code, job.health, job.publishers) == ("exited", 3, "unhealthy",
                                                                       [])
    assert parse_ps("") == []
