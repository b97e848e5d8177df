"""The repository lock: reads share a repository, everything else runs alone, in order."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from stackhub.adapters.repo_lock import RepoLock
from stackhub.adapters.restic import Repository, ResticCli


async def _hold(lock: RepoLock, shared: bool, log: list[str], tag: str, wait: float) -> None:
    async with lock.hold(shared=shared):
        log.append(f"+{tag}")
        await asyncio.sleep(wait)
        log.append(f"-{tag}")


async def test_reads_share_and_a_change_runs_alone() -> None:
    lock = RepoLock()
    log: list[str] = []
    await asyncio.gather(_hold(lock, True, log, "r1", 0.05), _hold(lock, True, log, "r2", 0.05))
    assert log[:2] == ["+r1", "+r2"]  # both in before either left
    log.clear()
    await asyncio.gather(_hold(lock, False, log, "w", 0.05), _hold(lock, True, log, "r", 0.01))
    assert log == ["+w", "-w", "+r", "-r"]
    assert lock.held == (0, False)


async def test_a_waiting_change_goes_before_later_reads() -> None:
    lock = RepoLock()
    log: list[str] = []

    async def later(tag: str, shared: bool, delay: float) -> None:
        await asyncio.sleep(delay)
        await _hold(lock, shared, log, tag, 0.02)

    await asyncio.gather(_hold(lock, True, log, "r1", 0.1), later("w", False, 0.01),
                         later("r2", True, 0.02))
    assert log == ["+r1", "-r1", "+w", "-w", "+r2", "-r2"]


async def test_a_cancelled_waiter_neither_holds_nor_blocks() -> None:
    lock = RepoLock()
    log: list[str] = []
    release = asyncio.Event()

    async def held_until_released() -> None:  # not a timed hold: a slow CI box must not end it
        async with lock.hold(shared=True):
            log.append("+r1")
            await release.wait()
            log.append("-r1")

    holder = asyncio.ensure_future(held_until_released())
    await asyncio.sleep(0)
    writer = asyncio.ensure_future(_hold(lock, False, log, "w", 0.01))
    await asyncio.sleep(0.01)
    reader = asyncio.ensure_future(_hold(lock, True, log, "r2", 0.01))
    await asyncio.sleep(0.01)
    assert "+r2" not in log  # queued behind the writer
    writer.cancel()
    await asyncio.sleep(0.01)
    assert "+r2" in log  # the cancelled writer no longer holds it back
    assert "-r1" not in log  # r2 joined the read still held, it did not wait for its end
    release.set()
    await asyncio.gather(holder, reader)
    with pytest.raises(asyncio.CancelledError):
        await writer
    assert lock.held == (0, False) and "+w" not in log


FAKE = """\
import json, sys, time
log = sys.argv[1]
start = time.monotonic()
time.sleep(0.4)
with open(log, "a") as out:
    out.write(json.dumps([sys.argv[2:], start, time.monotonic()]) + "\\n")
print("[]")
"""


def _fake_restic(tmp_path: Path) -> tuple[str, Path]:
    log = tmp_path / "runs.jsonl"
    script = tmp_path / "fake.py"
    script.write_text(FAKE)
    binary = tmp_path / "restic"
    binary.write_text(f"#!/bin/sh\nexec {sys.executable} {script} {log} \"$@\"\n")
    binary.chmod(0o755)
    return str(binary), log


def _overlap(log: Path) -> bool:
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(runs) == 2
    (_, s1, e1), (_, s2, e2) = runs
    return bool(s1 < e2 and s2 < e1)


async def test_restic_reads_of_one_repository_run_side_by_side(tmp_path: Path) -> None:
    binary, log = _fake_restic(tmp_path)
    cli = ResticCli(binary)
    repo = Repository(name="r", url=str(tmp_path / "repo"), password_file=tmp_path / "pw")
    await asyncio.gather(
        cli.restore(repo, "latest", tmp_path / "a"),
        cli.extract(repo, "latest", ["/backups/stage/x/volumes/db"], tmp_path / "b"))
    assert _overlap(log), "two restores of one repository waited for each other"


async def test_a_changing_restic_run_never_overlaps_a_read(tmp_path: Path) -> None:
    binary, log = _fake_restic(tmp_path)
    cli = ResticCli(binary)
    repo = Repository(name="r", url=str(tmp_path / "repo"), password_file=tmp_path / "pw")
    await asyncio.gather(cli.forget(repo, ["ab" * 32]), cli.snapshots(repo))
    assert not _overlap(log)


async def test_a_waiter_granted_and_cancelled_at_once_gives_the_lock_back() -> None:
    lock = RepoLock()
    log: list[str] = []
    first = lock.hold(shared=False)
    await first.__aenter__()
    waiter = asyncio.ensure_future(_hold(lock, False, log, "w2", 0.01))
    await asyncio.sleep(0)  # queued behind the holder
    await first.__aexit__(None, None, None)  # the lock goes to w2, whose task has not run yet
    assert lock.held == (0, True)
    waiter.cancel()  # cancelled before it could start using it
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert lock.held == (0, False) and "+w2" not in log
    async with lock.hold(shared=True):  # free for the next one
        assert lock.held == (1, False)


async def test_fetches_take_restics_lock_unless_stackhub_made_the_local_repository(
        tmp_path: Path) -> None:
    binary, log = _fake_restic(tmp_path)
    cli = ResticCli(binary)
    shared = Repository(name="r", url="sftp:u@h:/r", password_file=tmp_path / "pw")
    owned = Repository(name="l", url=str(tmp_path / "repo"), password_file=tmp_path / "pw",
                       key_hint="ab" * 32)
    for index, repo in enumerate((shared, owned)):
        await cli.restore(repo, "latest", tmp_path / f"a{index}")
        await cli.extract(repo, "latest", ["/x"], tmp_path / f"b{index}")
        await cli.extract(repo, "latest", ["/x"], tmp_path / f"c{index}", lock=False)
    runs = [json.loads(line)[0] for line in log.read_text().splitlines()]
    assert [("--no-lock" in args, "--key-hint" in args) for args in runs] == [
        (False, False), (False, False), (True, False),  # a repository others may share
        (True, True), (True, True), (True, True)]  # its own local one: no lock to wait for
