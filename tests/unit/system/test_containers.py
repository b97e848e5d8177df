"""The containers view: engine records turned into summaries, guarded removals."""

from __future__ import annotations

from typing import Any

import pytest

from stackhub.errors import Conflict, EngineUnavailable, Invalid
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
    def __init__(self) -> None:
        self.containers = [
            raw_container("b", "other", volume="scratch"),
            raw_container("a", "stackhub-blog-web-1", labels=MANAGED,
                          status="Up 1 minute (healthy)", volume="stackhub-blog_data",
                          network="stackhub-blog_default", image_id="sha256:bbb"),
        ]
        self.removed: list[tuple[str, str]] = []
        self.actions: list[tuple[str, str]] = []

    def all_containers(self) -> list[dict[str, Any]]:
        return self.containers

    def inspect_container(self, ref: str) -> dict[str, Any]:
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

    def all_images(self) -> list[dict[str, Any]]:
        return [{"Id": "sha256:aaa", "RepoTags": ["stackhub-test/web:1"], "Size": 10,
                 "Created": 1},
                {"Id": "sha256:bbb", "RepoTags": ["app/web:2"], "Size": 20, "Created": 2},
                {"Id": "sha256:ccc", "RepoTags": ["<none>:<none>"], "Size": 5, "Created": 3}]

    def remove_image(self, ref: str, *, force: bool = False) -> None:
        self.removed.append(("image", ref))

    def prune_images(self, *, dangling_only: bool = True) -> dict[str, Any]:
        return {"ImagesDeleted": [{"Untagged": "x:1"}, {"Deleted": "sha256:ccc"}],
                "SpaceReclaimed": 5 if dangling_only else 50}

    def all_volumes(self) -> list[dict[str, Any]]:
        return [{"Name": "scratch", "Driver": "local", "Labels": None},
                {"Name": "stackhub-blog_data", "Driver": "local", "Labels": MANAGED},
                {"Name": "loose", "Driver": "local"}]

    def remove_volume(self, name: str) -> None:
        self.removed.append(("volume", name))

    def all_networks(self) -> list[dict[str, Any]]:
        return [{"Id": "n1" * 8, "Name": "stackhub-blog_default", "Driver": "bridge",
                 "Labels": MANAGED},
                {"Id": "n2" * 8, "Name": "mynet", "Driver": "bridge"},
                {"Id": "n3" * 8, "Name": "bridge", "Driver": "bridge"}]

    def remove_network(self, name: str) -> None:
        self.removed.append(("network", name))


@pytest.fixture
def engine() -> FakeInventory:
    return FakeInventory()


def test_inventory_refuses_an_engine_without_the_calls() -> None:
    with pytest.raises(EngineUnavailable):
        svc.inventory(object())
    fake = FakeInventory()
    assert svc.inventory(fake) is fake


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
    raw = engine.inspect_container("other")
    raw["Config"]["Env"].append("DATABASE_URL=postgres://u:s3cr3t-value@db/x")
    raw["Config"]["Cmd"] = ["app", "--key=s3cr3t-value"]
    engine.inspect_container = lambda ref: raw  # type: ignore[method-assign]
    detail = svc.inspect_container(engine=engine, ref="other",
                                   secrets=frozenset({"s3cr3t-value"}))
    env = {e.name: (e.value, e.redacted) for e in detail.env}
    assert env["DATABASE_URL"] == (f"postgres://u:{svc.REDACTED}@db/x", True)
    assert detail.command == ["app", f"--key={svc.REDACTED}"]
    assert "s3cr3t-value" not in detail.model_dump_json()
