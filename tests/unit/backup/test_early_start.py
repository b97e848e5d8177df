"""A stop-mode backup starts the app again once restic has read everything the app can change.

restic reads the app's bind folders first (in place), then StackHub's own files (the project
files, the staged copy of the volumes). The app must stay stopped until restic says it is done
with the former, and should not wait for the latter.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from stackhub import labels
from stackhub.adapters.fakes import FakeEngine
from stackhub.adapters.restic import BackupSummary, Report, Repository
from stackhub.adapters.volumes import VolumeInfo
from stackhub.backup.models import BackupRequest
from stackhub.operations.journal import OperationFilter
from stackhub.services import Services
from tests.unit.apps.test_flows import install, settle

from .test_restore_checks import FakeRestic


def running(engine: FakeEngine, name: str) -> bool:
    """Tell whether the instance's containers run."""
    return any(c.state == "running" for c in engine.containers()
               if c.project == labels.project_name(name))


class NoVolumes:
    """The volume copier of an app without named volumes."""

    def volumes_of(self, project: str) -> list[VolumeInfo]:
        return []

    def remove_helpers(self) -> None:
        return None


class ReadingRestic(FakeRestic):
    """A backup that reads the app's folders, says so, then goes on with StackHub's files;
    it records whether the app ran at each of these moments."""

    def __init__(self, engine: FakeEngine, name: str, *, release: bool = True,
                 fail: bool = False, starts: bool | None = None) -> None:
        super().__init__([], {})
        self.engine, self.name, self.release, self.fail = engine, name, release, fail
        self.starts = release if starts is None else starts  # expected to start meanwhile
        self.seen: dict[str, object] = {}
        self.finishing: Callable[[], bool] | None = None

    async def backup(self, repo: Repository, paths: list[str], *, cwd: Path, tags: list[str],
                     host: str, report: Report | None = None, excludes: Sequence[Path] = (),
                     live: Sequence[str] = (),
                     released: Callable[[], None] | None = None) -> BackupSummary:
        self.seen["paths"], self.seen["live"] = list(paths), list(live)
        self.seen["ran at the start"] = running(self.engine, self.name)
        await asyncio.sleep(0.05)  # reading the app's folders: nothing may start it
        self.seen["ran while its folders were read"] = running(self.engine, self.name)
        if self.release and released is not None:
            released()
        # the staged copy and the project files: the app starts meanwhile if released (given
        # up to 10 s: the start runs in a thread, slow on a busy CI box, where 1 s once failed);
        # unreleased, 1 s in which nothing may start it
        deadline = asyncio.get_running_loop().time() + (10 if self.starts else 1)
        while not running(self.engine, self.name) and \
                asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)
        self.seen["ran before restic ended"] = running(self.engine, self.name)
        # restic reads the rest for longer than the start takes: it ends once the start has
        # handed the step back (the containers run a moment before the start returns, and a
        # restic that ended in that moment rightly gets no `finish` step)
        while self.finishing is not None and not self.finishing() and \
                asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)
        if self.fail:
            from stackhub.errors import RepositoryError

            raise RepositoryError("the repository went away")
        return BackupSummary(snapshot_id="ab" * 4)


def _steps(live: Services, name: str) -> list[str]:
    page = live.runner.journal.page(OperationFilter(instance=name, kind="backup"), limit=5)
    return [s.name for s in page.items[0].steps]


async def _backup(live: Services, engine: FakeEngine, fake: ReadingRestic,
                  name: str = "blog") -> None:
    live.backups.restic = fake
    live.backups.flows.restic = fake
    live.backups.flows.volumes = NoVolumes()  # type: ignore[assignment]
    await live.backups.create(name, BackupRequest())
    await settle(live, name)


async def test_the_app_starts_once_restic_has_read_its_folders(
        live: Services, engine: FakeEngine) -> None:
    await install(live)
    live.paths.instance_data("blog").mkdir(parents=True, exist_ok=True)
    fake = ReadingRestic(engine, "blog")
    fake.finishing = lambda: "finish" in _steps(live, "blog")
    await _backup(live, engine, fake)
    assert fake.seen["live"] == ["appdata/blog"]  # its folders: the staged copy is StackHub's
    assert "backups/stage/blog" in fake.seen["paths"]  # type: ignore[operator]
    assert fake.seen["ran at the start"] is False
    assert fake.seen["ran while its folders were read"] is False
    assert fake.seen["ran before restic ended"] is True
    assert _steps(live, "blog") == ["prepare", "stop", "snapshot", "start", "finish"]
    assert running(engine, "blog")


async def test_an_app_without_folders_starts_before_restic_reads(
        live: Services, engine: FakeEngine) -> None:
    await install(live)
    shutil.rmtree(live.paths.instance_data("blog"))  # the app keeps its data in volumes
    fake = ReadingRestic(engine, "blog", release=False, starts=True)
    fake.finishing = lambda: "finish" in _steps(live, "blog")
    await _backup(live, engine, fake)
    assert fake.seen["live"] == []
    # nothing restic reads can change once the volumes are staged: the start goes first,
    # without restic's word (this restic never gives it)
    assert fake.seen["ran before restic ended"] is True
    assert _steps(live, "blog") == ["prepare", "stop", "snapshot", "start", "finish"]


async def test_without_restics_word_the_app_starts_after_the_snapshot(
        live: Services, engine: FakeEngine) -> None:
    await install(live)
    live.paths.instance_data("blog").mkdir(parents=True, exist_ok=True)
    fake = ReadingRestic(engine, "blog", release=False)
    await _backup(live, engine, fake)
    assert fake.seen["ran before restic ended"] is False  # it never said: no early start
    assert _steps(live, "blog") == ["prepare", "stop", "snapshot", "start"]
    assert running(engine, "blog")


@pytest.mark.parametrize("release", [True, False])
async def test_a_failed_snapshot_still_leaves_the_app_running_once(
        live: Services, engine: FakeEngine, release: bool) -> None:
    await install(live)
    live.paths.instance_data("blog").mkdir(parents=True, exist_ok=True)
    starts = len(live.apps.compose.verbs()) if hasattr(live.apps.compose, "verbs") else 0
    fake = ReadingRestic(engine, "blog", release=release, fail=True)
    await _backup(live, engine, fake)
    page = live.runner.journal.page(OperationFilter(instance="blog", kind="backup"), limit=5)
    assert page.items[0].state == "failed"
    assert running(engine, "blog")
    verbs = live.apps.compose.verbs()[starts:]  # type: ignore[attr-defined]
    assert verbs.count("start") == 1, verbs
