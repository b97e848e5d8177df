"""The /api/system containers routes over the fake engine (it implements the inventory too)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from stackhub.adapters.fakes import FakeEngine
from stackhub.api.app import create_app
from stackhub.services import Services

from ..support import IMAGE


@pytest.fixture
def client(services: Services, engine: FakeEngine) -> Iterator[TestClient]:
    token = services.paths.admin_token.read_text().strip()
    app = create_app(services.paths, services=services, public_host="host.test")
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as test_client:
        # after start-up, whose recovery would remove a container of an unknown instance
        engine.images.add(IMAGE)
        engine.add_instance_container("blog", image=IMAGE, ports=[(18080, 80, "tcp")])
        engine.add_container("other", image=IMAGE, volumes=["scratch"])
        engine.volumes["scratch"] = {}
        yield test_client


def test_every_list_answers_from_the_fake_engine(client: TestClient) -> None:
    containers = client.get("/api/system/containers")
    assert containers.status_code == 200, containers.text
    assert [(c["name"], c["managed"]) for c in containers.json()] == [
        ("stackhub-blog-web-1", True), ("other", False)]
    images = client.get("/api/system/images").json()
    assert [(i["tags"], i["containers"], i["managed"]) for i in images] == [([IMAGE], 2, True)]
    volumes = client.get("/api/system/volumes").json()
    assert [(v["name"], v["containers"]) for v in volumes] == [("scratch", 1)]
    networks = client.get("/api/system/networks").json()
    assert {n["name"] for n in networks} == {"bridge", "host", "none"}


def test_actions_and_guards(client: TestClient) -> None:
    detail = client.get("/api/system/containers/stackhub-blog-web-1").json()
    assert detail["instance"] == "blog" and detail["ports"][0]["host_port"] == 18080
    assert client.post("/api/system/containers/other/stop").json()["state"] == "exited"
    refused = client.delete("/api/system/containers/stackhub-blog-web-1")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict"
    assert client.delete(f"/api/system/images/{IMAGE}").status_code == 409  # in use
    assert client.delete("/api/system/volumes/scratch").status_code == 409  # in use
    assert client.delete("/api/system/containers/other").status_code == 204
    assert client.delete("/api/system/volumes/scratch").status_code == 204
    assert client.get("/api/system/containers/other").status_code == 404
    assert client.post("/api/system/images/prune").json() == {"deleted": [],
                                                              "space_reclaimed": 0}
