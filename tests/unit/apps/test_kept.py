"""Kept data: what a removal without purge leaves, listed, reused by a reinstall, purged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stackhub.adapters.fakes import FakeEngine
from stackhub.api.app import create_app
from stackhub.errors import Conflict, Invalid, NotFound
from stackhub.services import Services

from ..support import app_request, create_instance, instance_record, plan_request


async def settle(svc: Services, name: str) -> None:
    await asyncio.wait_for(svc.runner.tasks[name], 30)
    await asyncio.sleep(0)


async def install_and_remove(svc: Services, *, purge: bool) -> None:
    await svc.apps.install(app_request())
    await settle(svc, "blog")
    (svc.paths.instance_data("blog") / "notes.txt").write_bytes(b"n" * 10_000)
    await svc.apps.remove("blog", purge=purge)
    await settle(svc, "blog")


async def test_a_removal_that_keeps_data_is_listed_and_reused(live: Services,
                                                              engine: FakeEngine) -> None:
    await install_and_remove(live, purge=False)
    [kept] = live.kept.list()
    assert (kept.name, kept.app, kept.version, kept.folder) == ("blog", "blog", "1.0", True)
    assert kept.size >= 10_000 and kept.size_complete and kept.removed_at
    assert kept.volumes == ["stackhub-blog_dbdata"]
    plan = await live.apps.plan(plan_request(app_request()))
    assert plan.reuses_data
    fresh = await live.apps.plan(plan_request(app_request(name="other")))
    assert not fresh.reuses_data
    await live.apps.install(app_request())  # installed again: no longer "kept"
    await settle(live, "blog")
    assert live.kept.list() == []
    assert (live.paths.instance_data("blog") / "notes.txt").stat().st_size == 10_000


async def test_purge_deletes_the_folder_and_volumes(live: Services, engine: FakeEngine) -> None:
    await install_and_remove(live, purge=False)
    purged = live.kept.purge("blog")
    assert purged.name == "blog"
    assert not live.paths.instance_data("blog").exists()
    assert "stackhub-blog_dbdata" not in engine.volumes
    assert live.kept.list() == []
    with pytest.raises(NotFound):
        live.kept.purge("blog")


async def test_purge_refuses_an_installed_instance_and_bad_names(live: Services) -> None:
    await live.apps.install(app_request())
    await settle(live, "blog")
    with pytest.raises(Conflict, match="installed instance"):
        live.kept.purge("blog")
    assert live.paths.instance_data("blog").is_dir()
    for bad in ("..", "../secrets", "a/b", ""):
        with pytest.raises(Invalid):
            live.kept.purge(bad)
    assert live.paths.root.is_dir() and live.paths.secrets.is_dir()


async def test_a_purging_removal_keeps_nothing(live: Services) -> None:
    await install_and_remove(live, purge=True)
    assert live.kept.list() == []


@pytest.fixture
def api(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services.paths, services=services)) as client:
        token = services.paths.admin_token.read_text().strip()
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def test_the_routes_list_and_purge(api: TestClient, services: Services) -> None:
    assert api.get("/api/kept-data").json() == []
    (services.paths.instance_data("old")).mkdir(parents=True)
    listed = api.get("/api/kept-data").json()
    assert [(k["name"], k["app"], k["folder"]) for k in listed] == [("old", None, True)]
    assert api.delete("/api/kept-data/Bad..Name").status_code == 422
    assert api.delete("/api/kept-data/missing").status_code == 404
    purged = api.delete("/api/kept-data/old")
    assert purged.status_code == 200 and purged.json()["name"] == "old"
    assert not services.paths.instance_data("old").exists()
    entry = services.auth.audit.recent(1)[0]
    assert entry.action == "instance.purge_data" and entry.target == "old"


# -- an app others depend on (Umbrel's `dependencies`) is not removed from under them ----------

def _instance(name: str, app_ref: str, deps: list[str] | None = None) -> Any:
    record = instance_record(name)
    record.app_ref = app_ref
    record.definition = {**record.definition, "id": app_ref.split("/")[-1],
                         "dependencies": deps or []}
    return record


async def test_an_app_others_need_is_not_removed(live: Services) -> None:
    create_instance(live.records, _instance("node", "umb/bitcoin"))
    create_instance(live.records, _instance("wallet", "umb/lightning", ["bitcoin"]))
    create_instance(live.records, _instance("explorer", "umb/mempool", ["bitcoin", "electrs"]))
    with pytest.raises(Conflict, match="explorer, wallet need 'bitcoin' installed") as err:
        await live.apps.remove("node", purge=False)
    assert err.value.details == {"dependents": ["explorer", "wallet"]}
    assert live.records.find("node") is not None
    # a second instance of the same app still serves them: the first may go
    create_instance(live.records, _instance("node2", "umb/bitcoin"))
    accepted = await live.apps.remove("node", purge=False)
    await settle(live, "node")
    assert accepted.instance == "node" and live.records.find("node") is None
    # the dependents themselves can always be removed
    await live.apps.remove("wallet", purge=False)
    await settle(live, "wallet")
    assert live.records.find("wallet") is None


async def test_volumes_of_another_installation_are_neither_listed_nor_purged(
        live: Services, engine: FakeEngine) -> None:
    # same project name, another StackHub data root on the engine (or a plain compose project)
    engine.volumes["stackhub-keeper_db"] = {
        "io.stackhub.managed": "true", "io.stackhub.install": "someone-else",
        "com.docker.compose.project": "stackhub-keeper"}
    engine.volumes["stackhub-plain_db"] = {"com.docker.compose.project": "stackhub-plain"}
    assert live.kept.list() == []
    with pytest.raises(NotFound):
        live.kept.purge("keeper")
    assert "stackhub-keeper_db" in engine.volumes
