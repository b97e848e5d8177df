"""A restore is refused, with nothing journaled, when the snapshot does not fit the instance."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from stackhub.adapters.compose import COMPOSE_FILE, ENV_FILE
from stackhub.adapters.restic import (
    BackupSummary,
    ForgetPlan,
    Node,
    Report,
    Repository,
    Snapshot,
)
from stackhub.apps.models import InstanceStatus
from stackhub.backup.flows import definition_of, same_project
from stackhub.backup.models import RestoreRequest
from stackhub.errors import Conflict, Invalid, NotFound, StorageFull
from stackhub.operations.journal import OperationFilter
from stackhub.services import Services
from stackhub.state.instances import InstanceRecord

SNAP = "ab" * 32


def _record(name: str, app: str) -> InstanceRecord:
    return InstanceRecord(
        name=name, app_ref=app, store=None, format="stackhub", version="1.0", revision=None,
        status=InstanceStatus.RUNNING.value, main_service=None, main_port=None, main_path=None,
        ports=[], parameters={"TOKEN": "x"}, secret_names=["TOKEN"], definition={}, error=None,
        update_available=None, created_at="", updated_at="")


class FakeRestic:
    """Answers from a fixed snapshot; anything that would change data fails the test."""

    def __init__(self, nodes: list[Node], definition: dict[str, object]) -> None:
        self.nodes = nodes
        self.definition = definition
        self.extracted: list[list[str]] = []

    async def version(self) -> str:
        return "restic 0.14.0"

    async def init(self, repo: Repository) -> None:
        return None

    async def add_light_key(self, repo: Repository) -> str:
        return "c" * 64

    async def open(self, repo: Repository) -> None:
        return None

    async def backup(self, repo: Repository, paths: list[str], *, cwd: Path, tags: list[str],
                     host: str, report: Report | None = None,
                     excludes: Sequence[Path] = (), live: Sequence[str] = (),
                     released: Callable[[], None] | None = None) -> BackupSummary:
        raise AssertionError("no backup expected")

    async def snapshots(self, repo: Repository, *,
                        tags: list[str] | None = None) -> list[Snapshot]:
        snap = Snapshot(id=SNAP, short_id=SNAP[:8], time="2026-01-01T00:00:00Z",
                        tags=["stackhub", "instance=web", "app=official/web"])
        return [snap] if not tags or set(tags) <= set(snap.tags) else []

    async def ls(self, repo: Repository, snapshot: str) -> list[Node]:
        return self.nodes

    async def listing(self, repo: Repository, snapshot: str, *, tags: list[str] | None = None
                      ) -> tuple[Snapshot | None, list[Node]]:
        await asyncio.sleep(0.01)  # a real restic run lets other tasks run meanwhile
        found = await self.snapshots(repo, tags=tags)
        snap = found[0] if found and (snapshot == "latest" or found[0].id.startswith(snapshot)) \
            else None
        return snap, self.nodes if snap is not None else []

    async def dump(self, repo: Repository, snapshot: str, path: str, *,
                   limit: int = 4 << 20) -> bytes:
        return json.dumps(self.definition).encode()

    async def restore(self, repo: Repository, snapshot: str, target: Path, *,
                      excludes: Sequence[str] = ()) -> None:
        raise AssertionError("no restore expected")

    async def extract(self, repo: Repository, snapshot: str, paths: list[str],
                      target: Path, *, timeout: float = 600, lock: bool = True) -> None:
        assert not lock  # a look at three small files takes no repository lock
        self.extracted.append(list(paths))
        for path in paths:
            (target / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
            (target / path.lstrip("/")).write_text(json.dumps(self.definition))

    async def check(self, repo: Repository, *, read_data_subset: str | None = None) -> str:
        return ""

    async def find_packs(self, repo: Repository, packs: list[str]) -> list[str]:
        raise AssertionError("no find expected")

    async def forget(self, repo: Repository, snapshot_ids: list[str]) -> None:
        raise AssertionError("no forget expected")

    async def forget_plan(self, repo: Repository, *, tags: list[str], host: str,
                          keep: Mapping[str, int]) -> ForgetPlan:
        raise AssertionError("no forget expected")


GOOD = [Node(path="/instances/web/compose.yaml", type="file", size=10),
        Node(path="/backups/stage/web/definition.json", type="file", size=10)]


def _wire(live: Services, nodes: list[Node], app: str = "official/web") -> None:
    fake = FakeRestic(nodes, definition_of(_record("web", app), []))
    live.backups.restic = fake
    live.backups.flows.restic = fake


def _insert(live: Services, app: str) -> None:
    with live.db.transaction() as conn:
        live.records.insert(conn, _record("web", app))


def _journal(live: Services) -> int:
    return live.runner.journal.page(OperationFilter(instance="web"), limit=50).total


@pytest.mark.parametrize(("nodes", "snapshot", "error", "words"), [
    ([Node(path="/etc/passwd", type="file")], "latest", Invalid, "outside"),
    ([Node(path="/appdata/web/../../etc", type="dir")], "latest", Invalid, "will not"),
    (GOOD, "cd" * 4, NotFound, "no snapshot"),
    (GOOD, "xyz", Invalid, "snapshot id"),
    (GOOD[:1], "latest", Invalid, "holds no instance definition"),
    ([GOOD[0], Node(path=GOOD[1].path, type="file", size=5 << 20)], "latest", Invalid,
     "larger than"),
    ([Node(path="/appdata/web/huge", type="file", size=1 << 60)], "latest", StorageFull,
     "free"),
])
async def test_refused_restores_change_nothing(live: Services, nodes: list[Node], snapshot: str,
                                               error: type, words: str) -> None:
    _insert(live, "official/web")
    _wire(live, nodes)
    with pytest.raises(error) as caught:
        await live.backups.restore("web", snapshot, RestoreRequest())
    assert words in caught.value.message  # type: ignore[attr-defined]
    assert _journal(live) == 0
    assert live.records.get("web").status == InstanceStatus.RUNNING.value


async def test_a_snapshot_of_another_app_is_refused(live: Services) -> None:
    _insert(live, "official/other")
    _wire(live, GOOD, app="official/web")
    with pytest.raises(Conflict, match="is a backup of official/web"):
        await live.backups.restore("web", "latest", RestoreRequest())
    assert _journal(live) == 0
    # one restic run reads the definition and the project files, not one `dump` each
    fake = live.backups.restic
    assert isinstance(fake, FakeRestic)
    assert fake.extracted == [[n.path for n in GOOD]]


async def test_a_snapshot_of_another_instance_is_refused(live: Services) -> None:
    _wire(live, GOOD)
    with pytest.raises(NotFound, match="no backup of 'blog'"):
        await live.backups.restore("blog", "latest", RestoreRequest())
    assert live.records.find("blog") is None


def test_a_snapshot_of_the_same_project_files_skips_the_risk_analysis(live: Services) -> None:
    folder = live.backups.flows.paths.instance_dir("web")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / COMPOSE_FILE).write_bytes(b"services: {web: {image: x}}\n")
    (folder / ENV_FILE).write_bytes(b"A=1\n")
    files = {COMPOSE_FILE: b"services: {web: {image: x}}\n", ENV_FILE: b"A=1\n"}
    assert same_project(folder, files)
    assert not same_project(folder, {**files, ENV_FILE: b"A=2\n"})
    assert not same_project(folder, {COMPOSE_FILE: files[COMPOSE_FILE]})
    assert not same_project(folder, {**files, COMPOSE_FILE: b"services: {}\n"})
    (folder / ENV_FILE).unlink()  # no env file on either side: the same
    assert same_project(folder, {COMPOSE_FILE: files[COMPOSE_FILE]})
    (folder / COMPOSE_FILE).unlink()  # no project at all is never "the same"
    assert not same_project(folder, {})
    (folder / COMPOSE_FILE).symlink_to("/etc/hostname")  # a link is not the instance's file
    assert not same_project(
        folder, {COMPOSE_FILE: Path("/etc/hostname").read_bytes()})


async def test_only_a_snapshot_that_changes_the_project_is_analysed(
        live: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    _insert(live, "official/web")
    _wire(live, GOOD)
    fake = live.backups.restic
    assert isinstance(fake, FakeRestic)
    folder = live.backups.flows.paths.instance_dir("web")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / COMPOSE_FILE).write_text(json.dumps(fake.definition))  # what the fake extracts
    analysed: list[Path] = []

    async def analyse(name: str, project: Path, secrets: object) -> tuple[list[object], str]:
        analysed.append(project)
        return [], "digest"

    async def restored(run: object, plan: object) -> InstanceStatus:
        return InstanceStatus.RUNNING

    monkeypatch.setattr(live.backups.flows.apps, "analyse", analyse)
    monkeypatch.setattr(live.backups.flows, "restore", restored)
    await live.backups.restore("web", "latest", RestoreRequest())
    assert analysed == []  # the instance's own project comes back: its risks are its own
    (folder / COMPOSE_FILE).write_text("services: {web: {image: other}}\n")
    for task in list(live.runner.tasks.values()):
        await task
    await live.backups.restore("web", "latest", RestoreRequest())
    assert folder in analysed and len(analysed) == 2  # the live project and the snapshot's
