"""Install, retry, remove and crash recovery, run against the fake engine and compose."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from stackhub import labels
from stackhub.adapters.fakes import FakeCompose, FakeEngine
from stackhub.apps import flows as flows_module
from stackhub.apps.models import InstanceStatus, OperationRead, OperationState
from stackhub.catalog.models import AppDefinition
from stackhub.errors import (
    AlreadyExists,
    Conflict,
    EngineError,
    EngineUnavailable,
    Invalid,
    NotFound,
    RiskNotAccepted,
    StackHubError,
)
from stackhub.events import Event
from stackhub.operations.runner import Prepare, Run
from stackhub.services import Services

from ..support import (
    DB_IMAGE,
    IMAGE,
    app_request,
    compose_request,
    create_instance,
    drain,
    instance_record,
)


def subscribe(svc: Services, topic: str = "operation") -> asyncio.Queue[Event]:
    return svc.bus.subscribe(lambda e: e.topic == topic).queue


async def settle(svc: Services, name: str) -> None:
    """Wait for the background operation of `name` and for queued callbacks."""
    await asyncio.wait_for(svc.runner.tasks[name], 30)
    await asyncio.sleep(0)


async def install(svc: Services, name: str = "blog", **kwargs: object) -> str:
    accepted = await svc.apps.install(app_request(name=name, **kwargs))  # type: ignore[arg-type]
    await settle(svc, name)
    return accepted.operation.id


async def wait_for_verb(compose: FakeCompose, verb: str) -> None:
    for _ in range(4000):
        if verb in compose.verbs():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"compose {verb} was never called")


def project_containers(engine: FakeEngine, name: str) -> list[str]:
    return sorted(c.name for c in engine.containers() if c.project == labels.project_name(name))


# -- install ------------------------------------------------------------------------------------

async def test_install_success(live: Services, engine: FakeEngine, compose: FakeCompose) -> None:
    queue = subscribe(live)
    op_id = await install(live)
    events = drain(queue)
    kinds = [(e.kind, e.data.get("step") or e.data.get("image") or e.data.get("state"))
             for e in events]
    assert kinds[0] == ("step", "pull")
    assert kinds[-4:] == [("step", "start"), ("step", "wait"), ("step", "verify"),
                          ("finished", "succeeded")]
    pulls = [e.data for e in events if e.kind == "pull"]
    for image, first in ((IMAGE, 10.0), (DB_IMAGE, 50.0)):
        percents = [p["percent"] for p in pulls if p["image"] == image]
        assert percents[0] == first and percents[-1] == 100.0  # throttled in between
        assert percents == sorted(percents)
    assert [p["image"] for p in pulls] == sorted([p["image"] for p in pulls],
                                                 key=[IMAGE, DB_IMAGE].index)
    overall = [e.data["progress"] for e in events if "progress" in e.data]
    assert overall == sorted(overall) and overall[-1] == 100.0
    assert all(e.key == "blog" and e.data["operation"] == op_id for e in events)

    op = live.runner.journal.operation(op_id)
    assert (op.state, op.progress, op.error) == (OperationState.SUCCEEDED, 100.0, None)
    record = live.records.get("blog")
    assert record.status == InstanceStatus.RUNNING
    assert live.apps.get("blog").status == InstanceStatus.RUNNING
    assert compose.verbs() == ["config", "up"]
    assert project_containers(engine, "blog") == ["stackhub-blog-db-1", "stackhub-blog-web-1"]
    assert engine.images == {IMAGE, DB_IMAGE}


async def test_flows_remember_the_last_pull_of_each_image_until_the_operation_ends(
        live: Services) -> None:
    op = live.runner.journal.operation(await install(live))
    assert live.runner.pulls(op.id) == []  # finished: forgotten
    live.runner.emit(op, "pull", image="web:1", percent=10.0)
    live.runner.emit(op, "pull", image="db:2", percent=5.0)
    live.runner.emit(op, "pull", image="web:1", percent=60.0)
    assert [(p["image"], p["percent"], p["operation"]) for p in live.runner.pulls(op.id)] == [
        ("web:1", 60.0, op.id), ("db:2", 5.0, op.id)]
    assert live.runner.pulls("another-operation") == []
    live.runner.emit(op, "finished", state="succeeded")
    assert live.runner.pulls(op.id) == []


async def test_install_writes_private_project_files(live: Services) -> None:
    await install(live)
    folder = live.paths.instance_dir("blog")
    for name in ("compose.yaml", ".env", "values.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    assert live.paths.instance_data("blog").is_dir()


async def test_instance_view_hides_secrets(live: Services) -> None:
    await install(live)
    view = live.apps.get("blog")
    assert view.parameters["DB_PASSWORD"] == "********"
    assert view.parameters["TITLE"] == "My blog"
    assert view.urls == ["http://host.test:18080/"]
    assert sorted(c.service or "" for c in view.containers) == ["db", "web"]


async def test_images_present_are_not_pulled(live: Services, engine: FakeEngine) -> None:
    engine.images |= {IMAGE, DB_IMAGE}
    await install(live)
    assert engine.called("pull") == []


async def test_pull_failure_on_a_fresh_install_rolls_back(
        live: Services, engine: FakeEngine, compose: FakeCompose) -> None:
    del engine.pullable[DB_IMAGE]
    queue = subscribe(live)
    op_id = await install(live)
    assert live.records.find("blog") is None
    assert not live.paths.instance_dir("blog").exists()
    assert not live.paths.instance_data("blog").exists()
    op = live.runner.journal.operation(op_id)
    assert op.state == OperationState.FAILED
    assert op.error is not None and f"could not pull image {DB_IMAGE}" in op.error
    finished = [e for e in drain(queue) if e.kind == "finished"]
    assert finished[-1].data["code"] == "image_pull_failed"
    assert "up" not in compose.verbs()
    assert engine.raw_containers == []


async def test_rollback_keeps_a_data_dir_that_existed_before(live: Services,
                                                             engine: FakeEngine) -> None:
    kept = live.paths.instance_data("blog")
    kept.mkdir()
    (kept / "precious.db").write_text("data")
    del engine.pullable[IMAGE]
    await install(live)
    assert live.records.find("blog") is None
    assert (kept / "precious.db").read_text() == "data"
    assert not live.paths.instance_dir("blog").exists()


async def test_engine_down_before_pull_is_interrupted_not_failed(live: Services,
                                                                  engine: FakeEngine) -> None:
    engine.available = False  # the status cache has not noticed yet: the install is journaled
    op_id = await install(live)
    op = live.runner.journal.operation(op_id)
    assert op.state == OperationState.INTERRUPTED
    assert "not reachable" in (op.error or "")
    assert live.records.get("blog").status == InstanceStatus.INTERRUPTED
    assert live.status.engine_down  # the runner's check taught the cache
    with pytest.raises(EngineUnavailable, match="not reachable since"):
        await live.apps.retry("blog")  # refused at once, nothing journaled
    assert len(live.runner.journal.operations("blog")) == 1
    engine.available = True  # back: the request asks the engine before the cache re-lists
    await live.apps.retry("blog")
    await settle(live, "blog")
    assert live.records.get("blog").status == InstanceStatus.RUNNING


async def test_failure_after_the_engine_was_touched_marks_failed(
        live: Services, compose: FakeCompose) -> None:
    compose.fail("up", EngineError("starting the app failed: boom"))
    queue = subscribe(live)
    op_id = await install(live)
    record = live.records.get("blog")
    assert record.status == InstanceStatus.FAILED
    assert record.error == "starting the app failed: boom"
    assert live.runner.journal.operation(op_id).state == OperationState.FAILED
    assert live.paths.instance_dir("blog").is_dir()
    assert drain(queue)[-1].data["code"] == "engine_error"


async def test_engine_stopping_mid_operation_marks_interrupted(
        live: Services, engine: FakeEngine, compose: FakeCompose) -> None:
    compose.fail("up", EngineUnavailable("starting the app: the Docker engine is not reachable"))
    queue = subscribe(live)
    await install(live)
    record = live.records.get("blog")
    assert record.status == InstanceStatus.INTERRUPTED
    assert "not reachable" in (record.error or "")
    finished = drain(queue)[-1]
    assert finished.data["state"] == "interrupted"
    assert finished.data["code"] == "engine_unavailable"


async def test_an_engine_error_while_the_engine_is_gone_is_an_interruption(
        live: Services, engine: FakeEngine, compose: FakeCompose) -> None:
    compose.fail("up", EngineError("starting the app failed: unexpected EOF"))
    real_up = compose.up

    async def up_then_gone(*args: object, **kwargs: object) -> None:
        engine.available = False  # the engine closes its socket as compose fails
        await real_up(*args, **kwargs)  # type: ignore[arg-type]

    compose.up = up_then_gone  # type: ignore[method-assign]
    op_id = await install(live)
    op = live.runner.journal.operation(op_id)
    assert op.state == OperationState.INTERRUPTED
    assert "unexpected EOF" in (op.error or "")
    assert live.records.get("blog").status == InstanceStatus.INTERRUPTED


async def test_unhealthy_containers_fail_the_install(live: Services, compose: FakeCompose) -> None:
    compose.health["web"] = "unhealthy"
    await install(live)
    record = live.records.get("blog")
    assert record.status == InstanceStatus.FAILED
    assert record.error == ("container stackhub-blog-web-1 is unhealthy; see its logs and "
                            "healthcheck")


async def test_install_waits_for_health_and_says_for_whom(
        live: Services, engine: FakeEngine, compose: FakeCompose) -> None:
    compose.health["web"] = "starting"
    queue = subscribe(live)
    accepted = await live.apps.install(app_request())
    waits: list[dict[str, object]] = []
    for _ in range(2000):
        waits = [e.data for e in drain(queue) if e.data.get("waiting")]
        if waits:
            break
        await asyncio.sleep(0.01)
    assert waits[0]["waiting"] == [{"service": "web", "reason": "health"}]
    assert live.runner.journal.operation(accepted.operation.id).state == "running"
    engine.set_state(labels.project_name("blog"), "running", health="healthy")
    await settle(live, "blog")
    assert live.records.get("blog").status == InstanceStatus.RUNNING


async def test_a_container_that_exits_fails_the_install_with_its_code(
        live: Services, compose: FakeCompose) -> None:
    compose.states["db"] = "exited"
    await install(live)
    record = live.records.get("blog")
    assert record.status == InstanceStatus.FAILED
    assert record.error == "container stackhub-blog-db-1 stopped (exit code 0); see its logs"


async def test_an_app_never_ready_fails_after_the_wait_timeout(
        live: Services, compose: FakeCompose, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flows_module, "WAIT_TIMEOUT", 0.05)
    compose.health["web"] = "starting"
    await install(live)
    record = live.records.get("blog")
    assert record.status == InstanceStatus.FAILED
    assert record.error == "the app was not ready after 0.05 s: waiting for web to become healthy"


async def test_retry_converges(live: Services, engine: FakeEngine, compose: FakeCompose) -> None:
    compose.fail("up", EngineError("starting the app failed: boom"))
    await install(live)
    engine.add_instance_container("blog", "web", state="created")  # left over by the failure
    with pytest.raises(NotFound):
        await live.apps.retry("wiki")
    accepted = await live.apps.retry("blog")
    await settle(live, "blog")
    assert live.runner.journal.operation(accepted.operation.id).state == OperationState.SUCCEEDED
    assert live.records.get("blog").status == InstanceStatus.RUNNING
    assert project_containers(engine, "blog") == ["stackhub-blog-db-1", "stackhub-blog-web-1"]
    with pytest.raises(Conflict, match="only failed or interrupted"):
        await live.apps.retry("blog")


async def test_risky_install_needs_consent_bound_to_the_digest(live: Services) -> None:
    text = f"services:\n  web:\n    image: {IMAGE}\n    privileged: true\n"
    with pytest.raises(RiskNotAccepted) as info:
        await live.apps.install(compose_request(text, name="risky"))
    digest = info.value.details["digest"]
    assert info.value.details["risks"][0]["code"] == "privileged"
    with pytest.raises(RiskNotAccepted):
        await live.apps.install(compose_request(text, name="risky", accept="sha256:" + "0" * 64))
    assert live.records.find("risky") is None
    await live.apps.install(compose_request(text, name="risky", accept=digest))
    await settle(live, "risky")
    assert live.records.get("risky").status == InstanceStatus.RUNNING


async def test_two_instances_of_one_app_side_by_side(live: Services, engine: FakeEngine) -> None:
    await install(live, "blog")
    await install(live, "blog-2")
    ports = {r.name: r.ports[0].host_port for r in live.records.all()}
    assert ports == {"blog": 18080, "blog-2": 18081}
    assert len(engine.containers()) == 4
    assert live.apps.get("blog-2").status == InstanceStatus.RUNNING


# -- busy instances ---------------------------------------------------------------------------

async def test_remove_while_installing_is_a_conflict(live: Services, compose: FakeCompose) -> None:
    gate = compose.hold("up")
    await live.apps.install(app_request())
    await wait_for_verb(compose, "up")
    with pytest.raises(Conflict, match="being installed"):
        await live.apps.remove("blog", purge=True)
    with pytest.raises(Conflict, match="busy"):
        await live.apps.lifecycle("blog", "stop")
    with pytest.raises(AlreadyExists):
        await live.apps.install(app_request())
    assert live.paths.instance_dir("blog").is_dir()
    gate.set()
    await settle(live, "blog")
    assert live.records.get("blog").status == InstanceStatus.RUNNING
    assert "down" not in compose.verbs()


# -- lifecycle and logs -------------------------------------------------------------------------

async def test_stop_start_restart(live: Services, compose: FakeCompose) -> None:
    await install(live)
    assert (await live.apps.lifecycle("blog", "stop")).status == InstanceStatus.STOPPED
    assert (await live.apps.lifecycle("blog", "start")).status == InstanceStatus.RUNNING
    assert (await live.apps.lifecycle("blog", "restart")).status == InstanceStatus.RUNNING
    assert compose.verbs()[-3:] == ["stop", "start", "restart"]


@pytest.mark.parametrize(("error", "state"), [
    (EngineError("stop the app failed: boom"), OperationState.FAILED),
    (EngineUnavailable("stop the app: the Docker engine is not reachable"),
     OperationState.INTERRUPTED),
])
async def test_failed_lifecycle_is_journaled_and_raised(
        live: Services, compose: FakeCompose, error: StackHubError,
        state: OperationState) -> None:
    await install(live)
    compose.fail("stop", error)
    with pytest.raises(type(error)):
        await live.apps.lifecycle("blog", "stop")
    last = live.runner.journal.operations("blog")[0]
    assert (last.kind, last.state) == ("stop", state)
    assert live.records.get("blog").status == InstanceStatus.RUNNING


async def test_logs(live: Services, compose: FakeCompose) -> None:
    await install(live)
    compose.log_lines["stackhub-blog"] = ["one\n", "two\n", "three\n"]
    lines = [line async for line in live.apps.logs("blog", tail=2, follow=False)]
    assert lines == ["two\n", "three\n"]


# -- remove ---------------------------------------------------------------------------------------

def make_decoys(svc: Services, tmp_path: Path) -> list[Path]:
    decoys = [svc.paths.appdata / "blog-old" / "f", svc.paths.appdata / "xblog" / "f",
              svc.paths.appdata / "blog.bak", svc.paths.instances / "blog-old" / "compose.yaml",
              svc.paths.root / "blog.txt", tmp_path / "blog", tmp_path / "outside" / "blog" / "f"]
    for path in decoys:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("keep me")
    return decoys


async def test_remove_keeps_data_by_default(live: Services, engine: FakeEngine,
                                            compose: FakeCompose) -> None:
    await install(live)
    (live.paths.instance_data("blog") / "data").mkdir(exist_ok=True)
    await live.apps.remove("blog", purge=False)
    await settle(live, "blog")
    assert live.records.find("blog") is None
    assert compose.calls[-1].verb == "down" and compose.calls[-1].options == {"volumes": False}
    assert live.paths.instance_data("blog").is_dir()
    assert (live.paths.instance_dir("blog") / "values.json").is_file()
    assert engine.containers() == []
    assert "stackhub-blog_dbdata" in engine.volumes


async def test_purge_deletes_only_the_instance_own_dirs(live: Services, engine: FakeEngine,
                                                        compose: FakeCompose,
                                                        tmp_path: Path) -> None:
    await install(live)
    decoys = make_decoys(live, tmp_path)
    queue = subscribe(live)
    accepted = await live.apps.remove("blog", purge=True)
    await settle(live, "blog")
    assert live.runner.journal.operation(accepted.operation.id).state == OperationState.SUCCEEDED
    assert drain(queue)[-1].data["state"] == "succeeded"
    assert not live.paths.instance_dir("blog").exists()
    assert not live.paths.instance_data("blog").exists()
    assert all(path.read_text() == "keep me" for path in decoys)
    assert compose.calls[-1].options == {"volumes": True}
    assert engine.volumes == {} and engine.networks == {}


async def test_purge_does_not_follow_a_symlinked_data_dir(live: Services, tmp_path: Path) -> None:
    await install(live)
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "f").write_text("keep me")
    data = live.paths.instance_data("blog")
    for child in data.iterdir():
        child.rmdir()
    data.rmdir()
    data.symlink_to(target)
    await live.apps.remove("blog", purge=True)
    await settle(live, "blog")
    assert not data.is_symlink()
    assert (target / "f").read_text() == "keep me"


async def test_remove_failure_marks_failed(live: Services, compose: FakeCompose) -> None:
    await install(live)
    compose.fail("down", EngineError("removing the app failed: boom"))
    await live.apps.remove("blog", purge=True)
    await settle(live, "blog")
    record = live.records.get("blog")
    assert record.status == InstanceStatus.FAILED
    assert live.paths.instance_data("blog").is_dir()


async def test_remove_of_an_instance_without_files(live: Services, compose: FakeCompose) -> None:
    create_instance(live.records, instance_record("bare", status="failed"))
    await live.apps.remove("bare", purge=False)
    await settle(live, "bare")
    assert live.records.find("bare") is None
    assert compose.calls[-1].project_dir is None


# -- recovery after a crash --------------------------------------------------------------------

async def test_recover_interrupts_running_operations(live: Services) -> None:
    op = create_instance(live.records, instance_record("stuck", status="installing"))
    gone = create_instance(live.records, instance_record("gone", status="installing"))
    live.records.delete("gone")
    report = await live.flows.recover()
    assert sorted(report["interrupted"]) == ["gone", "stuck"]
    assert live.runner.journal.operation(op.id).state == OperationState.INTERRUPTED
    assert live.runner.journal.operation(gone.id).state == OperationState.INTERRUPTED
    assert live.records.get("stuck").status == InstanceStatus.INTERRUPTED
    assert live.records.get("stuck").error == "StackHub stopped while this operation ran; retry it"
    assert live.records.find("gone") is None


async def test_recover_removes_orphans_and_leaves_known_instances(
        live: Services, engine: FakeEngine, compose: FakeCompose) -> None:
    await install(live)
    engine.add_instance_container("ghost", "web")
    engine.add_instance_container("ghost", "db", state="exited")
    ghost = {labels.MANAGED: "true", labels.INSTANCE: "ghost",
             labels.COMPOSE_PROJECT: "stackhub-ghost"}
    engine.networks["stackhub-ghost_default"] = dict(ghost)
    engine.volumes["stackhub-ghost_data"] = dict(ghost)
    engine.volumes["stackhub-never_data"] = {**ghost, labels.INSTANCE: "never"}
    create_instance(live.records, instance_record("ghost", status="installing"))
    live.records.delete("ghost")  # a rolled-back install: only its journal entry is left
    report = await live.flows.recover()
    assert report == {"interrupted": ["ghost"], "orphans": ["ghost"]}
    # whether through `compose down` or the engine, only the orphan's objects go
    down = [(c.project, c.project_dir, c.options) for c in compose.calls if c.verb == "down"]
    assert down in ([], [("stackhub-ghost", None, {"volumes": False})])
    assert project_containers(engine, "ghost") == []
    assert "stackhub-ghost_default" not in engine.networks
    assert "stackhub-ghost_data" not in engine.volumes
    assert "stackhub-never_data" in engine.volumes  # never journaled here: not ours to delete
    assert project_containers(engine, "blog") == ["stackhub-blog-db-1", "stackhub-blog-web-1"]
    assert live.records.get("blog").status == InstanceStatus.RUNNING


async def test_recover_without_an_engine_still_closes_operations(live: Services,
                                                                 engine: FakeEngine) -> None:
    create_instance(live.records, instance_record("stuck", status="installing"))
    engine.available = False
    report = await live.flows.recover()
    assert report == {"interrupted": ["stuck"], "orphans": []}


async def test_crash_after_containers_exist_then_recover_and_retry(
        live: Services, engine: FakeEngine, compose: FakeCompose,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the server dies right after journaling the install: its task never runs
    def journal_only(op: OperationRead, work: object, *, prepare: Prepare, **_: object) -> None:
        prepare(Run(live.runner, op))
        live.runner.release(op)

    monkeypatch.setattr(live.runner, "start", journal_only)
    await live.apps.install(app_request())
    engine.add_instance_container("blog", "web", state="created")
    report = await live.flows.recover()
    assert report == {"interrupted": ["blog"], "orphans": []}
    assert live.apps.get("blog").status == InstanceStatus.INTERRUPTED
    monkeypatch.undo()
    await live.apps.retry("blog")
    await settle(live, "blog")
    assert live.apps.get("blog").status == InstanceStatus.RUNNING
    assert project_containers(engine, "blog") == ["stackhub-blog-db-1", "stackhub-blog-web-1"]


async def test_retry_converges_when_the_crash_came_before_the_files(live: Services) -> None:
    create_instance(live.records, instance_record("early", status="installing"))
    await live.flows.recover()
    await live.apps.retry("early")
    await settle(live, "early")
    assert live.records.get("early").status == InstanceStatus.RUNNING


async def test_retry_writes_app_files_a_crash_left_out(live: Services) -> None:
    record = instance_record("seeded", status="installing")
    record.definition["files"] = [{"path": "data/seed.txt", "content": "seed"},
                                  {"path": "hello.txt", "content": "hi ${TITLE}",
                                   "template": True}]
    create_instance(live.records, record)
    live.apps.planner.rerender("seeded", AppDefinition.model_validate(record.definition),
                          record.parameters)  # the project was written, the files were not
    await live.flows.recover()
    await live.apps.retry("seeded")
    await settle(live, "seeded")
    data = live.paths.instance_data("seeded")
    assert (data / "data" / "seed.txt").read_text() == "seed"
    assert (data / "hello.txt").read_text() == "hi t"
    assert live.records.get("seeded").status == InstanceStatus.RUNNING


async def test_retry_makes_the_bind_folders_a_crash_left_out(live: Services) -> None:
    record = instance_record("binds", status="installing")
    record.definition["compose"] = {"services": {"web": {
        "image": IMAGE, "volumes": ["./files/uploads:/uploads", "./config:/config:ro"]}}}
    create_instance(live.records, record)  # the crash came before files and folders
    await live.flows.recover()
    await live.apps.retry("binds")
    await settle(live, "binds")
    data = live.paths.instance_data("binds")
    for folder in (data / "files" / "uploads", data / "config"):
        assert folder.is_dir() and not folder.is_symlink()
        if os.geteuid() == 0:  # made by StackHub for PUID:PGID, not by Docker for root
            assert (folder.stat().st_uid, folder.stat().st_gid) == (1000, 1000)
    assert live.records.get("binds").status == InstanceStatus.RUNNING


async def test_retry_refuses_a_bind_folder_that_became_a_link(live: Services,
                                                               tmp_path: Path) -> None:
    record = instance_record("linked", status="installing")
    record.definition["compose"] = {"services": {"web": {
        "image": IMAGE, "volumes": ["./uploads:/uploads"]}}}
    create_instance(live.records, record)
    await live.flows.recover()
    data = live.paths.instance_data("linked")
    data.mkdir(parents=True)
    (data / "uploads").symlink_to(tmp_path)  # planted while the server was down
    with pytest.raises(Invalid, match="is a link"):
        await live.apps.retry("linked")
    assert live.records.get("linked").status == InstanceStatus.INTERRUPTED


async def test_an_unreadable_stored_definition_still_lists_and_retry_says_so(
        live: Services) -> None:
    record = instance_record("old", status="failed", ports=[("web", 18080, 80)])
    record.definition["compose"] = "no longer a mapping"  # as after an incompatible upgrade
    create_instance(live.records, record)
    listed = {i.name: i for i in live.apps.all()}
    assert listed["old"].main is not None and listed["old"].urls == ["http://host.test:18080/"]
    with pytest.raises(Invalid, match="can no longer be read"):
        await live.apps.retry("old")


async def test_cancelled_install_is_marked_interrupted(live: Services,
                                                       compose: FakeCompose) -> None:
    compose.hold("up")
    await live.apps.install(app_request())
    await wait_for_verb(compose, "up")
    live.runner.tasks["blog"].cancel()
    with pytest.raises(asyncio.CancelledError):
        await live.runner.tasks["blog"]
    assert live.records.get("blog").status == InstanceStatus.INTERRUPTED
    assert live.runner.journal.operations("blog")[0].state == OperationState.INTERRUPTED
