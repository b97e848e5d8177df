"""The fakes behave like the adapters they stand in for (shapes taken from real Compose)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from stackhub import labels
from stackhub.adapters.engine import PullProgress
from stackhub.adapters.fakes import FakeCompose, FakeEngine, interpolate, resolve_project
from stackhub.errors import EngineError, EngineUnavailable, ImagePullFailed, Invalid, NotFound

COMPOSE = """\
services:
  web:
    image: nginx:${TAG}
    ports: ["${WEB_PORT}:80", "127.0.0.1:9000:9000/udp", "81", {target: 82, published: 8082},
            "8000-8001:70-71"]
    volumes: ["/srv/data/../x:/data", "./rel:/rel:ro", "named:/n", "/anon"]
    environment: ["A=1", "B", "Q=${Q}"]
    labels: ["x=y"]
    devices: ["/dev/snd:/dev/snd"]
volumes:
  named:
    driver_opts: {type: none, o: bind, device: /etc}
"""
ENV = "TAG='1.2'\nWEB_PORT='8080'\nQ=\"it's \\\\ \\$x\"\n"


def project(tmp_path: Path, compose: str = COMPOSE, env: str = ENV) -> Path:
    (tmp_path / "compose.yaml").write_text(compose)
    (tmp_path / ".env").write_text(env)
    return tmp_path


def test_resolved_shape_matches_compose_config(tmp_path: Path) -> None:
    # expected values as printed by `docker compose config --format json` (v2) for this project
    model = resolve_project("stackhub-blog", project(tmp_path))
    web = model["services"]["web"]
    assert model["name"] == "stackhub-blog"
    assert web["image"] == "nginx:1.2"
    assert web["ports"] == [
        {"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"},
        {"mode": "ingress", "host_ip": "127.0.0.1", "target": 9000, "published": "9000",
         "protocol": "udp"},
        {"mode": "ingress", "target": 81, "protocol": "tcp"},
        {"mode": "ingress", "target": 82, "published": "8082", "protocol": "tcp"},
        {"mode": "ingress", "target": 70, "published": "8000", "protocol": "tcp"},
        {"mode": "ingress", "target": 71, "published": "8001", "protocol": "tcp"}]
    assert web["volumes"] == [
        {"type": "bind", "source": "/srv/data/../x", "target": "/data",
         "bind": {"create_host_path": True}},
        {"type": "bind", "source": f"{tmp_path}/rel", "target": "/rel", "read_only": True,
         "bind": {"create_host_path": True}},
        {"type": "volume", "source": "named", "target": "/n", "volume": {}},
        {"type": "volume", "target": "/anon", "volume": {}}]
    assert web["environment"] == {"A": "1", "B": None, "Q": "it's \\ $$x"}
    assert web["labels"] == {"x": "y"}
    assert web["devices"] == [{"source": "/dev/snd", "target": "/dev/snd", "permissions": "rwm"}]
    assert model["volumes"]["named"]["name"] == "stackhub-blog_named"
    assert model["networks"]["default"]["name"] == "stackhub-blog_default"


@pytest.mark.parametrize(("template", "result"), [
    ("${A}", "1"), ("$A-x", "1-x"), ("${NOPE}", ""), ("${NOPE:-d}", "d"), ("${EMPTY:-d}", "d"),
    ("${EMPTY-d}", ""), ("${A:+alt}", "alt"), ("${NOPE:+alt}", ""), ("$${A}", "${A}"),
])
def test_interpolation(template: str, result: str) -> None:
    assert interpolate(template, {"A": "1", "EMPTY": ""}) == result


def test_required_variable_and_undefined_volume(tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="required variable X"):
        resolve_project("p", project(tmp_path, "services: {a: {image: '${X:?set X}'}}\n", ""))
    with pytest.raises(Invalid, match="undefined volume"):
        resolve_project("p", project(tmp_path, "services: {a: {image: x, volumes: ['v:/v']}}\n"))
    with pytest.raises(Invalid, match="neither an image"):
        resolve_project("p", project(tmp_path, "services: {a: {command: x}}\n"))


async def test_compose_verbs_mutate_the_engine(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.allow_pull("img:1")
    compose = FakeCompose(engine)
    folder = project(tmp_path, "services:\n  web:\n    image: img:1\n    ports: ['8080:80']\n"
                     f"    labels: {{{labels.MANAGED}: 'true', {labels.INSTANCE}: blog}}\n"
                     "networks:\n  default:\n"
                     f"    labels: {{{labels.MANAGED}: 'true', {labels.INSTANCE}: blog}}\n", "")
    await compose.up("stackhub-blog", folder)
    [box] = engine.containers()
    assert (box.name, box.instance, box.project, box.service, box.state) == (
        "stackhub-blog-web-1", "blog", "stackhub-blog", "web", "running")
    assert [(p.host_port, p.container_port) for p in box.ports] == [(8080, 80)]
    assert engine.managed_networks() == [("stackhub-blog_default", "blog")]
    await compose.lifecycle("stop", "stackhub-blog", folder)
    assert engine.containers()[0].state == "exited"
    [row] = await compose.ps("stackhub-blog", folder)
    assert (row.name, row.service, row.state, row.exit_code) == (
        "stackhub-blog-web-1", "web", "exited", 0)
    assert [(p.published_port, p.target_port) for p in row.publishers] == [(8080, 80)]
    assert (await compose.config("stackhub-blog", folder)).services["web"].image == "img:1"
    await compose.down("stackhub-blog", None, volumes=True)
    assert engine.containers() == [] and engine.networks == {}
    assert compose.verbs() == ["up", "stop", "ps", "config", "down"]
    with pytest.raises(Invalid):
        await compose.lifecycle("explode", "stackhub-blog", folder)


async def test_compose_failures_gates_and_no_processes(tmp_path: Path) -> None:
    compose = FakeCompose()
    compose.fail("down", EngineError("boom"), times=2)
    for _ in range(2):
        with pytest.raises(EngineError, match="boom"):
            await compose.down("p", None, volumes=False)
    await compose.down("p", None, volumes=False)
    compose.engine.available = False
    with pytest.raises(EngineUnavailable):
        await compose.down("p", None, volumes=False)
    gate = compose.hold("version")
    gate.set()
    assert await compose.version() == "2.99.0-fake"


def test_engine_pull_progress_and_failures() -> None:
    engine = FakeEngine()
    engine.allow_pull("a:1", 30.0, 60.0)
    seen: list[PullProgress] = []
    engine.pull("a:1", seen.append)
    assert [p.percent for p in seen] == [30.0, 60.0, 100.0]
    assert engine.image_present("a:1")
    with pytest.raises(ImagePullFailed, match="pull access denied"):
        engine.pull("b:1", seen.append)
    engine.allow_pull("c:1", 10.0)
    engine.pull_failures["c:1"] = ImagePullFailed("could not pull image c:1: manifest unknown")
    with pytest.raises(ImagePullFailed, match="manifest unknown"):
        engine.pull("c:1", seen.append)
    assert engine.called("pull") == ["a:1", "b:1", "c:1"]


def test_engine_unavailable_switch() -> None:
    engine = FakeEngine()
    engine.available = False
    for call in (engine.ping, engine.containers, engine.managed_networks,
                 engine.managed_volumes, lambda: engine.image_present("x")):
        with pytest.raises(EngineUnavailable):
            call()
    with pytest.raises(EngineUnavailable):
        next(engine.events(threading.Event()))


def test_engine_containers_networks_volumes() -> None:
    engine = FakeEngine()
    engine.add_instance_container("blog", health="healthy")
    engine.add_container("other", state="exited")
    assert [c.name for c in engine.containers()] == ["stackhub-blog-web-1"]
    assert len(engine.containers(managed_only=False)) == 2
    assert engine.containers()[0].health == "healthy"
    engine.volumes["v"] = {labels.MANAGED: "true", labels.INSTANCE: "blog"}
    engine.volumes["foreign"] = {}
    assert engine.managed_volumes() == [("v", "blog")]
    engine.remove_volume("v")
    with pytest.raises(NotFound):
        engine.remove_volume("v")
    with pytest.raises(NotFound):
        engine.remove_network("n")


def test_engine_events_until_stopped() -> None:
    engine = FakeEngine()
    stop = threading.Event()
    engine.event_queue.put({"Action": "start"})
    stream = engine.events(stop)
    assert next(stream) == {"Action": "start"}
    stop.set()
    assert list(stream) == []
