"""The containers view: engine records turned into summaries, guarded removals."""

from __future__ import annotations

from typing import Any

import pytest

from stackhub import labels
from stackhub.adapters.engine import (
    ContainerDetailRecord,
    ContainerRecord,
    ImageRecord,
    InventoryEngine,
    NetworkRecord,
    PruneRecord,
    VolumeRecord,
)
from stackhub.adapters.fakes import FakeEngine
from stackhub.errors import Conflict, Invalid, NotFound
from stackhub.system import containers as svc

MANAGED = {"io.stackhub.managed": "true", "io.stackhub.instance": "blog",
           "com.docker.compose.project": "stackhub-blog", "com.docker.compose.service": "web"}


def raw_container(cid: str, name: str, *, labels: dict[str, str] | None = None,
                  state: str = "running", status: str = "Up 2 minutes",
                  volume: str | None = None, network: str = "bridge",
                  image_id: str = "sha256:aaa") -> dict[str, Any]:
    mounts = [{"Type": "volume", "Name": volume}] if volume else []
    return {"Id": cid * 16, "Names": [f"/{name}"], "Image": "stackhub-test/web:1",
            "ImageID": image_id, "State": state, "Status": status, "Created": 1700000000,
            "Labels": labels or {}, "Mounts": mounts,
            "Ports": [{"PrivatePort": 80, "PublicPort": 18080, "IP": "0.0.0.0", "Type": "tcp"},
                      {"PrivatePort": 80, "PublicPort": 18080, "IP": "::", "Type": "tcp"},
                      {"PrivatePort": 443, "Type": "tcp"}],
            "NetworkSettings": {"Networks": {network: {}}}}


class FakeInventory:
    """Engine answers as the Engine API gives them, read by the adapter's record parsers."""

    def __init__(self) -> None:
        self.containers = [
            raw_container("b", "other", volume="scratch"),
            raw_container("a", "stackhub-blog-web-1", labels=MANAGED,
                          status="Up 1 minute (healthy)", volume="stackhub-blog_data",
                          network="stackhub-blog_default", image_id="sha256:bbb"),
        ]
        self.removed: list[tuple[str, str]] = []
        self.actions: list[tuple[str, str]] = []

    def all_containers(self) -> list[ContainerRecord]:
        return [ContainerRecord.from_api(raw) for raw in self.containers]

    def inspect_container(self, ref: str) -> ContainerDetailRecord:
        return ContainerDetailRecord.from_api(self.inspect_raw(ref))

    def inspect_raw(self, ref: str) -> dict[str, Any]:
        raw = next(c for c in self.containers if ref in (c["Id"], c["Names"][0][1:]))
        return {"Id": raw["Id"], "Name": raw["Names"][0], "Image": raw["ImageID"],
                "RestartCount": 1,
                "Config": {"Image": raw["Image"], "Labels": raw["Labels"],
                           "Cmd": ["httpd", "-f"], "Entrypoint": None,
                           "Env": ["TZ=UTC", "DB_PASSWORD=hunter2", "API_TOKEN=", "PATH=/bin"]},
                "State": {"Status": raw["State"], "StartedAt": "2026-01-01T00:00:00Z",
                          "ExitCode": 0, "Health": {"Status": "healthy"}},
                "HostConfig": {"RestartPolicy": {"Name": "unless-stopped"}},
                "Mounts": [{"Type": "bind", "Source": "/srv/x", "Destination": "/data",
                            "RW": False}],
                "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0",
                                                          "HostPort": "18080"},
                                                         {"HostIp": "::", "HostPort": "18080"}],
                                              "443/tcp": None},
                                    "Networks": {"bridge": {"IPAddress": "172.17.0.2"}}}}

    def container_action(self, ref: str, action: str, *, timeout: int | None = None) -> None:
        self.actions.append((ref, action))

    def remove_container(self, ref: str, *, force: bool = False) -> None:
        self.removed.append(("container", ref))

    def all_images(self) -> list[ImageRecord]:
        raws = [{"Id": "sha256:aaa", "RepoTags": ["stackhub-test/web:1"], "Size": 10,
                 "Created": 1},
                {"Id": "sha256:bbb", "RepoTags": ["app/web:2"], "Size": 20, "Created": 2},
                {"Id": "sha256:ccc", "RepoTags": ["<none>:<none>"], "Size": 5, "Created": 3}]
        return [ImageRecord.from_api(raw) for raw in raws]

    def remove_image(self, ref: str, *, force: bool = False) -> None:
        self.removed.append(("image", ref))

    def prune_images(self, *, dangling_only: bool = True) -> PruneRecord:
        return PruneRecord.from_api({"ImagesDeleted": [{"Untagged": "x:1"},
                                                       {"Deleted": "sha256:ccc"}],
                                     "SpaceReclaimed": 5 if dangling_only else 50})

    def all_volumes(self) -> list[VolumeRecord]:
        raws: list[dict[str, Any]] = [
            {"Name": "scratch", "Driver": "local", "Labels": None},
            {"Name": "stackhub-blog_data", "Driver": "local", "Labels": MANAGED},
            {"Name": "loose", "Driver": "local"}]
        return [VolumeRecord.from_api(raw) for raw in raws]

    def remove_volume(self, name: str) -> None:
        self.removed.append(("volume", name))

    def all_networks(self) -> list[NetworkRecord]:
        raws: list[dict[str, Any]] = [
            {"Id": "n1" * 8, "Name": "stackhub-blog_default", "Driver": "bridge",
             "Labels": MANAGED},
            {"Id": "n2" * 8, "Name": "mynet", "Driver": "bridge"},
            {"Id": "n3" * 8, "Name": "bridge", "Driver": "bridge"}]
        return [NetworkRecord.from_api(raw) for raw in raws]

    def remove_network(self, name: str) -> None:
        self.removed.append(("network", name))


@pytest.fixture
def engine() -> FakeInventory:
    return FakeInventory()


def test_the_test_double_is_an_inventory_engine() -> None:
    inventory: InventoryEngine = FakeInventory()
    assert isinstance(inventory, InventoryEngine)


def test_containers_list_marks_stackhub_ones_first(engine: FakeInventory) -> None:
    found = svc.list_containers(engine=engine)
    assert [c.name for c in found] == ["stackhub-blog-web-1", "other"]
    mine = found[0]
    assert mine.managed and mine.instance == "blog" and mine.service == "web"
    assert mine.project == "stackhub-blog" and mine.health == "healthy"
    assert mine.short_id == ("a" * 16)[:12]
    assert [(p.container_port, p.host_port) for p in mine.ports] == [(80, 18080), (443, None)]
    assert not found[1].managed and found[1].health is None


def test_inspect_redacts_secret_looking_values(engine: FakeInventory) -> None:
    detail = svc.inspect_container(engine=engine, ref="other")
    env = {e.name: (e.value, e.redacted) for e in detail.env}
    assert env["DB_PASSWORD"] == (svc.REDACTED, True)
    assert env["TZ"] == ("UTC", False)
    assert env["API_TOKEN"] == ("", False)  # nothing to hide
    assert "hunter2" not in detail.model_dump_json()
    assert detail.restart_policy == "unless-stopped" and detail.health == "healthy"
    assert detail.mounts[0].read_only and detail.attached[0].ip_address == "172.17.0.2"
    assert [(p.container_port, p.host_port) for p in detail.ports] == [(443, None), (80, 18080)]


def test_actions_are_checked(engine: FakeInventory) -> None:
    svc.container_action(engine=engine, ref="other", action="restart")
    assert engine.actions == [("other", "restart")]
    with pytest.raises(Invalid):
        svc.container_action(engine=engine, ref="other", action="explode")
    with pytest.raises(Invalid):
        svc.inspect_container(engine=engine, ref="../../etc/passwd x")


def test_managed_things_cannot_be_removed_here(engine: FakeInventory) -> None:
    with pytest.raises(Conflict, match="instance 'blog'"):
        svc.remove_container(engine=engine, ref="stackhub-blog-web-1")
    with pytest.raises(Conflict):
        svc.remove_volume(engine=engine, name="stackhub-blog_data")
    with pytest.raises(Conflict):
        svc.remove_network(engine=engine, ref="stackhub-blog_default")
    with pytest.raises(Conflict, match="engine's own"):
        svc.remove_network(engine=engine, ref="bridge")
    with pytest.raises(Conflict, match="used by 1"):
        svc.remove_volume(engine=engine, name="scratch")
    assert engine.removed == []
    svc.remove_container(engine=engine, ref="other")
    svc.remove_volume(engine=engine, name="loose")
    svc.remove_network(engine=engine, ref="mynet")
    assert engine.removed == [("container", "b" * 16), ("volume", "loose"),
                              ("network", "n2" * 8)]


def test_images_know_their_users(engine: FakeInventory) -> None:
    images = {i.id: i for i in svc.list_images(engine=engine)}
    assert images["sha256:aaa"].containers == 1 and not images["sha256:aaa"].managed
    assert images["sha256:bbb"].managed
    assert images["sha256:ccc"].dangling and images["sha256:ccc"].tags == []
    assert images["sha256:ccc"].short_id == "ccc"


def test_prune_reports_what_went(engine: FakeInventory) -> None:
    result = svc.prune_images(engine=engine)
    assert result.deleted == ["x:1", "sha256:ccc"] and result.space_reclaimed == 5
    assert svc.prune_images(engine=engine, all_unused=True).space_reclaimed == 50


def test_volumes_and_networks_count_users(engine: FakeInventory) -> None:
    volumes = {v.name: v for v in svc.list_volumes(engine=engine)}
    assert volumes["stackhub-blog_data"].managed and volumes["stackhub-blog_data"].containers == 1
    assert volumes["loose"].containers == 0
    networks = svc.list_networks(engine=engine)
    assert networks[0].name == "bridge" and networks[0].builtin
    assert {n.name: n.containers for n in networks} == {
        "bridge": 1, "stackhub-blog_default": 1, "mynet": 0}


def test_inspect_masks_known_secret_values_anywhere(engine: FakeInventory) -> None:
    # a secret embedded in a value whose name looks harmless (e.g. a database URL) and in the
    # command line is masked too, when StackHub knows it as an instance's secret
    raw = engine.inspect_raw("other")
    raw["Config"]["Env"].append("DATABASE_URL=postgres://u:s3cr3t-value@db/x")
    raw["Config"]["Cmd"] = ["app", "--key=s3cr3t-value"]
    engine.inspect_raw = lambda ref: raw  # type: ignore[method-assign]
    detail = svc.inspect_container(engine=engine, ref="other",
                                   secrets=frozenset({"s3cr3t-value"}))
    env = {e.name: (e.value, e.redacted) for e in detail.env}
    assert env["DATABASE_URL"] == (f"postgres://u:{svc.REDACTED}@db/x", True)
    assert detail.command == ["app", f"--key={svc.REDACTED}"]
    assert "s3cr3t-value" not in detail.model_dump_json()


def test_engine_records_read_what_the_engine_api_gives() -> None:
    [listed] = [c for c in FakeInventory().all_containers() if c.name == "other"]
    assert listed.image_id == "sha256:aaa" and listed.created == 1700000000
    assert listed.networks == ["bridge"] and listed.mounts[0].name == "scratch"
    assert len(listed.ports) == 3  # the IPv4 and IPv6 bindings are both kept here
    detail = FakeInventory().inspect_container("other")
    assert detail.entrypoint == [] and detail.command == ["httpd", "-f"]
    assert detail.image == "stackhub-test/web:1" and detail.restart_count == 1
    assert ContainerDetailRecord.from_api({"Id": "x", "Config": {"Cmd": "sh -c x"}}).command \
        == ["sh -c x"]
    assert ImageRecord.from_api({"Id": "sha256:d", "RepoTags": None}).tags == []
    assert PruneRecord.from_api(None) == PruneRecord()


# -- the same view served by the fake engine the API tests use ------------------------------

@pytest.fixture
def fake() -> FakeEngine:
    engine = FakeEngine()
    engine.images |= {"stackhub-test/web:1", "unused:1"}
    engine.networks["stackhub-blog_default"] = dict(MANAGED)
    engine.volumes["stackhub-blog_data"] = dict(MANAGED)
    engine.volumes["scratch"] = {}
    engine.add_instance_container("blog", image="stackhub-test/web:1", health="healthy",
                                  ports=[(18080, 80, "tcp")],
                                  networks=["stackhub-blog_default"],
                                  volumes=["stackhub-blog_data"])
    engine.add_container("other", image="stackhub-test/web:1", volumes=["scratch"])
    return engine


def test_fake_engine_lists_the_inventory(fake: FakeEngine) -> None:
    found = svc.list_containers(engine=fake)
    assert [(c.name, c.managed, c.health) for c in found] == [
        ("stackhub-blog-web-1", True, "healthy"), ("other", False, None)]
    assert [(p.container_port, p.host_port) for p in found[0].ports] == [(80, 18080)]
    images = {tuple(i.tags): i for i in svc.list_images(engine=fake)}
    assert images[("stackhub-test/web:1",)].containers == 2
    assert images[("stackhub-test/web:1",)].managed and not images[("unused:1",)].managed
    volumes = {v.name: (v.containers, v.managed) for v in svc.list_volumes(engine=fake)}
    assert volumes == {"stackhub-blog_data": (1, True), "scratch": (1, False)}
    networks = {n.name: (n.builtin, n.managed, n.containers)
                for n in svc.list_networks(engine=fake)}
    assert networks == {"bridge": (True, False, 0), "host": (True, False, 0),
                        "none": (True, False, 0), "stackhub-blog_default": (False, True, 1)}


def test_fake_engine_acts_and_guards_like_the_engine(fake: FakeEngine) -> None:
    detail = svc.inspect_container(engine=fake, ref="stackhub-blog-web-1")
    assert detail.instance == "blog" and detail.labels[labels.INSTANCE] == "blog"
    assert detail.attached[0].name == "stackhub-blog_default"
    assert svc.container_action(engine=fake, ref="other", action="stop").state == "exited"
    assert svc.container_action(engine=fake, ref="other", action="start").state == "running"
    with pytest.raises(Conflict, match="running"):
        svc.remove_container(engine=fake, ref="other")
    with pytest.raises(Conflict, match="is using it"):
        svc.remove_image(engine=fake, ref="stackhub-test/web:1")
    assert svc.prune_images(engine=fake).deleted == []  # nothing dangling
    pruned = svc.prune_images(engine=fake, all_unused=True)
    assert pruned.deleted[0] == "unused:1" and fake.images == {"stackhub-test/web:1"}
    svc.remove_container(engine=fake, ref="other", force=True)
    svc.remove_volume(engine=fake, name="scratch")
    with pytest.raises(NotFound):
        svc.inspect_container(engine=fake, ref="other")
    fake.networks["mine"] = {}
    svc.remove_network(engine=fake, ref="mine")  # removed by id, as the view does
    assert "mine" not in fake.networks and "scratch" not in fake.volumes
