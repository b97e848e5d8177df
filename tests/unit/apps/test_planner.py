"""Planning with fake adapters: names, ports, rendering, risks, and no engine changes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from stackhub import labels
from stackhub.adapters.compose import ResolvedProject
from stackhub.adapters.fakes import FakeCompose, FakeEngine
from stackhub.apps.models import (
    CatalogSource,
    ComposeSource,
    PlanRequest,
    check_name,
    default_name,
)
from stackhub.apps.planner import Plan, Planner, entry_urls, published_ports
from stackhub.apps.render import Rendered
from stackhub.catalog.models import AppDefinition, AppFile
from stackhub.config import Paths
from stackhub.errors import AlreadyExists, Conflict, Invalid, NotFound
from stackhub.services import Services

from ..support import (
    COMPOSE,
    DB_IMAGE,
    IMAGE,
    MANIFEST,
    app_request,
    create_instance,
    instance_record,
    plan_request,
)


@pytest.fixture
def planner(services: Services) -> Planner:
    return services.apps.planner


async def test_plan_of_a_stackhub_app(planner: Planner, paths: Paths) -> None:
    plan = await planner.plan(plan_request(app_request()))
    assert plan.instance == "blog"
    assert plan.values["WEB_PORT"] == "18080"
    assert plan.values["TITLE"] == "My blog"
    assert len(plan.values["DB_PASSWORD"]) == 24
    assert plan.secrets == {"DB_PASSWORD"}
    assert [(p.service, p.host_port, p.container_port) for p in plan.ports] == [("web", 18080, 80)]
    assert plan.images == [IMAGE, DB_IMAGE]
    assert plan.risks == []
    read = plan.read("host.test")
    assert read.urls == ["http://host.test:18080/"]
    assert read.project == "stackhub-blog"
    assert read.app == "blog" and read.format == "stackhub"
    web = plan.resolved.services["web"]
    assert web.volumes[0].source == str(paths.instance_data("blog") / "data")
    assert [(p.published, p.target) for p in web.ports] == [("18080", 80)]
    raw = plan.resolved.raw["services"]["web"]  # keys the typed model leaves out
    assert raw["labels"][labels.INSTANCE] == "blog"
    assert raw["environment"]["DB_PASSWORD"] == plan.values["DB_PASSWORD"]
    assert "DB_PASSWORD='" in read.env_file and "APP_INSTANCE='blog'" in read.env_file
    assert "${WEB_PORT}:80" in read.compose_file


async def test_plan_does_not_touch_the_engine_or_the_data_root(
        planner: Planner, compose: FakeCompose, engine: FakeEngine, paths: Paths) -> None:
    await planner.plan(plan_request(app_request()))
    assert compose.verbs() == ["config"]
    assert engine.called("pull") == [] and engine.raw_containers == []
    assert engine.networks == {} and engine.volumes == {}
    assert list(paths.instances.iterdir()) == [] and list(paths.appdata.iterdir()) == []
    assert planner.records.all() == []


async def test_unknown_app(planner: Planner) -> None:
    with pytest.raises(NotFound):
        await planner.plan(PlanRequest(source=CatalogSource(ref="official/nope")))


async def test_duplicate_instance_name(planner: Planner, compose: FakeCompose) -> None:
    create_instance(planner.records, instance_record("blog"))
    with pytest.raises(AlreadyExists, match="an instance named 'blog' already exists"):
        await planner.plan(plan_request(app_request()))
    assert compose.verbs() == []
    plan = await planner.plan(plan_request(app_request(name="blog-2")))
    assert plan.instance == "blog-2"


HOSTILE = ["../x", "a;rm -rf", "-rf", "Blog", "UPPER", "a" * 41, "blög", "a b", "a/b", "a.b",
           "x-", "$(id)", "`id`", "a\x00b", "\uff42log", "..", "."]


@pytest.mark.parametrize("name", HOSTILE)
async def test_hostile_names_are_refused_before_anything_runs(
        planner: Planner, compose: FakeCompose, paths: Paths, name: str) -> None:
    with pytest.raises(Invalid, match="is not allowed"):
        await planner.plan(plan_request(app_request(name=name)))
    assert compose.verbs() == []
    assert list(paths.instances.iterdir()) == []


@pytest.mark.parametrize("name", [*HOSTILE, ""])
def test_check_name_refuses(name: str) -> None:
    with pytest.raises(Invalid):
        check_name(name)


@pytest.mark.parametrize("name", ["a", "blog", "blog-2", "0", "a" * 40, "my-long-app-name-1"])
def test_check_name_accepts(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(("app_id", "name"), [
    ("TurboDiffusion_Nvidia", "turbodiffusion-nvidia"), ("blog", "blog"), ("__", "app"),
    ("A.B c", "a-b-c"), ("x" * 39 + "_y", "x" * 39),
])
def test_a_default_name_is_derived_from_any_app_id(app_id: str, name: str) -> None:
    assert check_name(default_name(app_id)) == name


async def test_an_app_id_with_an_underscore_plans_under_a_derived_name(planner: Planner) -> None:
    manifest = MANIFEST.replace("id: blog", "id: turbo_blog")
    plan = await planner.plan(plan_request(app_request(name=None, manifest=manifest)))
    assert plan.instance == "turbo-blog"


def test_check_name_refuses_a_trailing_newline() -> None:
    with pytest.raises(Invalid):
        check_name("blog\n")


async def test_name_defaults_to_the_app_id(planner: Planner) -> None:
    assert (await planner.plan(plan_request(app_request(name=None)))).instance == "blog"


async def test_taken_default_port_is_moved(planner: Planner, busy_host_ports: set[int]) -> None:
    busy_host_ports.add(18080)
    plan = await planner.plan(plan_request(app_request()))
    assert plan.values["WEB_PORT"] == "18081"
    assert plan.ports[0].host_port == 18081


async def test_requested_taken_port_is_a_conflict(planner: Planner,
                                                  busy_host_ports: set[int]) -> None:
    busy_host_ports.add(18500)
    with pytest.raises(Conflict, match="host port 18500/tcp for WEB_PORT is already in use"):
        await planner.plan(plan_request(app_request(values={"WEB_PORT": "18500"})))


async def test_ports_of_other_instances_are_skipped(planner: Planner) -> None:
    create_instance(planner.records, instance_record("wiki", ports=[("web", 18080, 80)]))
    plan = await planner.plan(plan_request(app_request()))
    assert plan.values["WEB_PORT"] == "18081"
    with pytest.raises(Conflict, match="by instance wiki"):
        await planner.plan(plan_request(app_request(values={"WEB_PORT": "18080"})))


async def test_ports_of_foreign_containers_are_skipped(planner: Planner,
                                                       engine: FakeEngine) -> None:
    engine.add_container("someone-else", ports=[(18080, 80, "tcp")])
    plan = await planner.plan(plan_request(app_request()))
    assert plan.values["WEB_PORT"] == "18081"


async def test_own_containers_do_not_block_a_replan(planner: Planner, engine: FakeEngine) -> None:
    engine.add_instance_container("blog", ports=[(18080, 80, "tcp")])
    plan = await planner.plan(plan_request(app_request()), replacing=True)
    assert plan.values["WEB_PORT"] == "18080"


async def test_planning_works_without_an_engine(planner: Planner, engine: FakeEngine) -> None:
    engine.available = False
    plan = await planner.plan(plan_request(app_request()))
    assert plan.values["WEB_PORT"] == "18080"


async def test_fixed_published_port_in_use_is_a_conflict(planner: Planner,
                                                         busy_host_ports: set[int]) -> None:
    busy_host_ports.add(18090)
    request = PlanRequest(source=ComposeSource(compose=(
        f"services:\n  web:\n    image: {IMAGE}\n    ports: ['18090:80']\n")), name="plain")
    with pytest.raises(Conflict, match=r"host port 18090/tcp \(service web\) is already in use"):
        await planner.plan(request)


async def test_same_port_published_twice_is_a_conflict(planner: Planner) -> None:
    request = PlanRequest(source=ComposeSource(compose=(
        f"services:\n  a:\n    image: {IMAGE}\n    ports: ['18090:80']\n"
        f"  b:\n    image: {IMAGE}\n    ports: ['18090:81']\n")), name="plain")
    with pytest.raises(Conflict, match="published twice"):
        await planner.plan(request)


async def test_port_range_that_does_not_expand_is_invalid(planner: Planner) -> None:
    request = PlanRequest(source=ComposeSource(compose=(
        f"services:\n  a:\n    image: {IMAGE}\n    ports: ['9000-9001:90']\n")), name="plain")
    with pytest.raises(Invalid, match="must be a single port number"):
        await planner.plan(request)


async def test_invalid_compose_is_reported(planner: Planner) -> None:
    request = PlanRequest(source=ComposeSource(compose=(
        f"services:\n  a:\n    image: {IMAGE}\n    volumes: ['nowhere:/x']\n")), name="plain")
    with pytest.raises(Invalid, match="undefined volume nowhere"):
        await planner.plan(request)


async def test_invalid_parameter_value(planner: Planner) -> None:
    with pytest.raises(Invalid, match="unknown parameter"):
        await planner.plan(plan_request(app_request(values={"NOPE": "1"})))
    with pytest.raises(Invalid, match="WEB_PORT"):
        await planner.plan(plan_request(app_request(values={"WEB_PORT": "http"})))


async def test_kept_values_are_reused(planner: Planner, paths: Paths) -> None:
    folder = paths.instance_dir("blog")
    folder.mkdir()
    (folder / "values.json").write_text(json.dumps({"DB_PASSWORD": "kept-db-password-123"}))
    plan = await planner.plan(plan_request(app_request()))
    assert plan.values["DB_PASSWORD"] == "kept-db-password-123"


async def test_digest_is_stable_across_secret_regeneration(planner: Planner) -> None:
    first = await planner.plan(plan_request(app_request()))
    second = await planner.plan(plan_request(app_request()))
    assert first.values["DB_PASSWORD"] != second.values["DB_PASSWORD"]
    assert first.digest == second.digest
    changed = await planner.plan(plan_request(app_request(compose=COMPOSE.replace(
        IMAGE, IMAGE + "-other"))))
    assert changed.digest != first.digest
    titled = await planner.plan(plan_request(app_request(values={"TITLE": "Another"})))
    assert titled.digest != first.digest


async def test_digest_is_stable_with_a_long_form_relative_bind(planner: Planner) -> None:
    text = (f"services:\n  web:\n    image: {IMAGE}\n    privileged: true\n    volumes:\n"
            "      - {type: bind, source: data, target: /data}\n")
    request = PlanRequest(source=ComposeSource(compose=text), name="risky")
    first, second = await planner.plan(request), await planner.plan(request)
    assert first.digest == second.digest


async def test_risky_compose_is_reported(planner: Planner) -> None:
    text = (f"services:\n  web:\n    image: {IMAGE}\n    privileged: true\n"
            "    volumes: ['/var/run/docker.sock:/var/run/docker.sock', './conf:/conf']\n")
    plan = await planner.plan(PlanRequest(source=ComposeSource(compose=text), name="risky"))
    assert [(r.code, r.severity) for r in plan.risks] == [("privileged", "critical"),
                                                          ("docker_socket", "critical")]


async def test_binds_into_the_stackhub_root_are_critical(planner: Planner, paths: Paths) -> None:
    text = (f"services:\n  web:\n    image: {IMAGE}\n"
            f"    volumes: ['{paths.secrets}:/s', '{paths.instance_data('risky')}/x:/ok']\n")
    plan = await planner.plan(PlanRequest(source=ComposeSource(compose=text), name="risky"))
    assert [(r.code, r.detail) for r in plan.risks] == [
        ("stackhub_data", f"bind-mounts host path {paths.secrets}")]


async def test_compose_source_gets_a_slug_id(planner: Planner) -> None:
    text = f"name: My Fancy App!\nservices:\n  web:\n    image: {IMAGE}\n    ports: ['80']\n"
    plan = await planner.plan(PlanRequest(source=ComposeSource(compose=text)))
    assert plan.instance == "my-fancy-app"
    assert plan.ports == []  # an unpublished port


def test_published_ports_and_urls(planner: Planner) -> None:
    resolved = ResolvedProject.parse({"services": {"web": {"ports": [
        {"target": 80, "published": "8080", "protocol": "tcp"}, {"target": 81},
        {"target": 53, "published": "5353", "protocol": "udp"}]}}})
    found = published_ports(resolved)
    assert [(p.host_port, p.container_port, p.protocol) for p in found] == [
        (8080, 80, "tcp"), (5353, 53, "udp")]
    app = planner.app_for(plan_request(app_request()))
    assert entry_urls(app.main, found, "h") == ["http://h:8080/"]


def test_urls_are_only_for_tcp_ports_of_the_main_entry() -> None:
    from stackhub.apps.models import PortMapping
    from stackhub.apps.planner import entry_urls
    from stackhub.catalog.models import AppDefinition, WebEntry

    app = AppDefinition(id="dns", name="DNS", compose={"services": {"web": {"image": "x"}}},
                        main=WebEntry(service="web", port=53))
    ports = [PortMapping(service="web", host_port=5353, container_port=53, protocol="udp"),
             PortMapping(service="web", host_port=5380, container_port=53, protocol="tcp")]
    assert entry_urls(app.main, ports, "host") == ["http://host:5380/"]


# -- files an app ships for its data folder (Umbrel seeds and templates) -----------------------

def shipped_plan(files: list[AppFile], env: dict[str, str]) -> Plan:
    app = AppDefinition(id="seeded", name="Seeded", compose={"services": {}}, files=files)
    return Plan(app=app, instance="seeded", values={}, rendered=Rendered(compose={}, env=env),
                resolved=ResolvedProject(), ports=[], risks=[], digest="")


def test_app_files_are_written_once_with_templates_filled(tmp_path: Path) -> None:
    data = tmp_path / "appdata" / "seeded"
    data.mkdir(parents=True)
    plan = shipped_plan([AppFile(path="app.conf", content="pw=${APP_PASSWORD} $MISSING.",
                                 template=True),
                         AppFile(path="data/settings.json", content='{"pw": "${APP_PASSWORD}"}'),
                         AppFile(path="data/kept.txt", content="new")],
                        {"APP_PASSWORD": "s3cret", "PUID": str(os.getuid()),
                         "PGID": str(os.getgid())})
    (data / "data").mkdir()
    (data / "data" / "kept.txt").write_text("the user's")
    assert plan.write_app_files(data) == ["app.conf", "data/settings.json"]
    assert (data / "app.conf").read_text() == "pw=s3cret ."  # unknown names become empty
    assert (data / "data" / "settings.json").read_text() == '{"pw": "${APP_PASSWORD}"}'
    assert (data / "data" / "kept.txt").read_text() == "the user's"
    assert oct((data / "app.conf").stat().st_mode & 0o777) == "0o644"  # as Umbrel writes it
    assert oct((data / "data" / "settings.json").stat().st_mode & 0o777) == "0o644"
    assert not [p.name for p in data.rglob(".*stackhub-*")], "no temporary file is left"


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root (CI runs as root)")
def test_app_files_leave_the_owners_of_kept_folders_alone(tmp_path: Path) -> None:
    data = tmp_path / "appdata" / "seeded"
    (data / "data" / "db").mkdir(parents=True)
    os.chown(data / "data" / "db", 33, 33)  # the app's own user made it
    plan = shipped_plan([AppFile(path="data/db/new.conf", content="x"),
                         AppFile(path="data/fresh/a.txt", content="y")],
                        {"PUID": "1000", "PGID": "1000"})
    assert plan.write_app_files(data) == ["data/db/new.conf", "data/fresh/a.txt"]
    assert (data / "data" / "db").stat().st_uid == 33
    assert (data / "data" / "db" / "new.conf").stat().st_uid == 1000
    assert (data / "data" / "fresh").stat().st_uid == 1000  # made by this call


def test_app_files_never_follow_links_in_a_kept_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "appdata" / "seeded"
    data.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (data / "data").symlink_to(outside)  # planted by an earlier instance's container
    (data / "app.conf").symlink_to(outside / "app.conf")
    plan = shipped_plan([AppFile(path="data/x.txt", content="x"),
                         AppFile(path="app.conf", content="y")], {})
    assert plan.write_app_files(data) == []
    assert list(outside.iterdir()) == []


def test_app_file_paths_must_stay_inside() -> None:
    for bad in ("../x", "/etc/passwd", "data/../../x", "a//b", "."):
        with pytest.raises(ValidationError):
            AppFile(path=bad, content="")


def test_bind_folders_are_made_without_following_links(tmp_path: Path) -> None:
    data = tmp_path / "appdata" / "blog"
    data.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (data / "conf").symlink_to(outside)  # left in a kept data folder by an earlier container
    plan = shipped_plan([], {})
    plan.resolved = ResolvedProject.parse({"services": {"web": {"volumes": [
        {"type": "bind", "source": str(data / "site" / "html"), "target": "/www"},
        {"type": "bind", "source": str(data / "conf"), "target": "/etc/app"}]}}})
    with pytest.raises(Invalid, match="is a link"):
        plan.make_data_dirs(data)
    assert (data / "site" / "html").is_dir()
    plan.resolved = ResolvedProject.parse({"services": {"web": {"volumes": [
        {"type": "bind", "source": str(data / "conf" / "sub"), "target": "/x"}]}}})
    with pytest.raises(Invalid, match="a link or a file is in the way"):
        plan.make_data_dirs(data)
    assert list(outside.iterdir()) == []
