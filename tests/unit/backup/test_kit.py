"""The recovery kit: rendered and read back, turned into restic's handle; recovery's plan."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from stackhub.adapters.restic import Repository
from stackhub.apps.models import Accepted
from stackhub.backup import kit, recovery
from stackhub.backup.models import RestoreRequest
from stackhub.backup.recovery import plan_path, recorded_repository, run_plan
from stackhub.errors import EngineUnavailable, Invalid, RiskNotAccepted

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\ndef\n-----END OPENSSH PRIVATE KEY-----\n"


def test_a_rendered_kit_reads_back_with_its_keys() -> None:
    s3 = kit.Kit(name="s3", url="s3:https://s3.example.com/b", password="pw",
                 access_key_id="AKIA", secret_access_key="secret")
    assert kit.parse(kit.render(s3, "Keep it safe.")) == s3
    sftp = kit.Kit(name="nas", url="sftp:backup@nas.lan:/srv/r", password="pw2",
                   ssh_private_key=KEY)
    text = kit.render(sftp, "Keep it safe.")
    assert kit.parse(text) == sftp and text.endswith("Keep it safe.\n")
    as_json = json.dumps({"name": "nas", "url": sftp.url, "password": "pw2",
                          "ssh_private_key": KEY, "warning": "x"})
    assert kit.parse(as_json) == sftp
    old = "StackHub backup repository: local\nURL: /srv/r\nPassword: pw\n\nKeep it.\n"
    assert kit.parse(old) == kit.Kit(name="local", url="/srv/r", password="pw")


@pytest.mark.parametrize("text", ["", "URL: /srv/r\n", "Password: x\n", "{not json"])
def test_a_kit_without_url_or_password_is_refused(text: str) -> None:
    with pytest.raises(Invalid):
        kit.parse(text)


def test_the_kits_handle_carries_its_secrets_privately(tmp_path: Path) -> None:
    sftp = kit.Kit(name="nas", url="sftp:backup@nas.lan:2222:/srv/r", password="pw",
                   ssh_private_key=KEY)
    repo = kit.repository(sftp, tmp_path / "k")
    assert repo.password_file.read_text() == "pw\n"
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "k" / "id_ed25519").read_text() == KEY
    assert (tmp_path / "k" / "id_ed25519").stat().st_mode & 0o777 == 0o600
    assert repo.options and "-p 2222" in repo.options[0] and "backup@nas.lan" in repo.options[0]
    s3 = kit.repository(kit.Kit(name="s3", url="s3:https://h/b", password="pw",
                                access_key_id="A", secret_access_key="S"), tmp_path / "s")
    assert s3.env["AWS_ACCESS_KEY_ID"] == "A" and s3.env["AWS_SECRET_ACCESS_KEY"] == "S"


def _db(path: Path, rows: list[tuple[str, str, str, int]]) -> Path:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE backup_repositories (name TEXT, url TEXT, kind TEXT, "
                     "is_default INTEGER, created_at TEXT)")
        conn.executemany("INSERT INTO backup_repositories VALUES (?,?,?,?,'')", rows)
    return path


def test_the_repository_is_found_by_url_or_the_moved_default_is_pointed_at_it(
        tmp_path: Path) -> None:
    db = _db(tmp_path / "a.db", [("local", "/old/repo", "local", 1),
                                 ("s3", "s3:https://h/b", "s3", 0)])
    given = Repository(name="recovery", url="s3:https://h/b", password_file=tmp_path / "p")
    assert recorded_repository(db, given) == "s3"
    assert recorded_repository(db, Repository(name="r", url="rest:https://x/",
                                               password_file=tmp_path / "p")) is None
    moved = tmp_path / "disk" / "repo"
    assert recorded_repository(db, Repository(name="r", url=str(moved),
                                              password_file=tmp_path / "p")) == "local"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT url FROM backup_repositories WHERE name = 'local'"
                            ).fetchone()[0] == str(moved)


def accepted(name: str) -> Accepted:
    """What a started restore answers (only its operation's id is read)."""
    return SimpleNamespace(operation=SimpleNamespace(id=f"op-{name}"))  # type: ignore[return-value]


async def test_the_plan_restores_each_instance_once_and_survives_a_refusal(
        tmp_path: Path) -> None:
    path = plan_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"repository": "local",
                                "restores": {"blog": "a" * 64, "wiki": "b" * 64}}))
    calls: list[tuple[str, str, str | None]] = []
    engine_down = [True]
    alerts: list[str] = []
    reports: list[tuple[str, str, str]] = []

    async def restore(name: str, snapshot: str, request: RestoreRequest) -> Accepted:
        if engine_down[0]:
            engine_down[0] = False
            raise EngineUnavailable("not yet")
        calls.append((name, snapshot, request.repository))
        if name == "wiki":
            raise RiskNotAccepted("risky options to accept", details={"digest": "d1g"})
        return accepted(name)

    async def settle(name: str) -> None:  # the entry stays until its restore has ended
        plan = json.loads(path.read_text())
        assert plan["restores"] == {"blog": "a" * 64, "wiki": "b" * 64}
        assert plan["operations"] == {"blog": "op-blog"}

    begun = await run_plan(tmp_path, restore, settle,
                           lambda action, target, ok, details: alerts.append(target),
                           outcome=lambda op: ("succeeded", None),
                           report=lambda *args: reports.append(args))
    assert begun == ["blog"] and alerts == ["wiki"]
    assert calls == [("blog", "a" * 64, "local"), ("wiki", "b" * 64, "local")]
    assert reports == [("wiki", "risky options to accept", "stackhub backup restore wiki "
                        "bbbbbbbbbbbb --repo local --yes --accept-risks d1g")]
    assert not path.exists()
    assert await run_plan(tmp_path, restore, settle, lambda *a: None) == []  # nothing twice


class Killed(BaseException):
    """The server killed in the middle of a restore."""


async def test_a_restore_killed_midway_is_resumed_or_reported_at_the_next_start(
        tmp_path: Path) -> None:
    path = plan_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"repository": "local", "restores": {
        "blog": "a" * 64, "wiki": "b" * 64, "shop": "c" * 64}}))
    calls: list[str] = []
    states: dict[str, tuple[str, str | None]] = {}
    reports: list[tuple[str, str, str]] = []

    async def restore(name: str, snapshot: str, request: RestoreRequest) -> Accepted:
        calls.append(name)
        states[f"op-{name}"] = ("running", None)
        return accepted(name)

    async def killed(name: str) -> None:
        raise Killed

    with pytest.raises(Killed):
        await run_plan(tmp_path, restore, killed, lambda *a: None, outcome=states.get)
    plan = json.loads(path.read_text())
    assert set(plan["restores"]) == {"blog", "wiki", "shop"}  # blog's entry is still there
    assert plan["operations"] == {"blog": "op-blog"}

    # the next start: the journal closed blog's restore as interrupted; it is run again
    states["op-blog"] = ("interrupted", "StackHub stopped while this operation ran")
    plan["operations"] |= {"wiki": "op-wiki", "shop": "op-shop"}  # (as if killed later)
    path.write_text(json.dumps(plan))
    states["op-wiki"] = ("failed", "the data disk is full")
    states["op-shop"] = ("succeeded", None)
    calls.clear()

    async def settle(name: str) -> None:
        states[f"op-{name}"] = ("succeeded", None)

    restored = await run_plan(tmp_path, restore, settle, lambda *a: None,
                              outcome=states.get, report=lambda *a: reports.append(a))
    assert calls == ["blog"]  # resumed; wiki's failure is reported, shop's success kept
    assert restored == ["blog", "shop"]
    assert reports == [("wiki", "the data disk is full",
                        "stackhub backup restore wiki bbbbbbbbbbbb --repo local --yes")]
    assert not path.exists()


async def test_a_restore_that_fails_after_it_began_is_reported(tmp_path: Path) -> None:
    path = plan_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"repository": "local", "restores": {"blog": "a" * 64}}))
    reports: list[tuple[str, str, str]] = []
    alerts: list[dict[str, object]] = []

    async def restore(name: str, snapshot: str, request: RestoreRequest) -> Accepted:
        return accepted(name)

    async def settle(name: str) -> None:
        return None

    restored = await run_plan(
        tmp_path, restore, settle, lambda action, target, ok, details: alerts.append(details),
        outcome=lambda op: ("failed", "restic: repository is unreachable"),
        report=lambda *a: reports.append(a))
    assert restored == [] and not path.exists()
    assert reports[0][:2] == ("blog", "restic: repository is unreachable")
    assert alerts[0]["command"] == reports[0][2]


async def test_each_attempt_is_counted_in_the_plan_before_the_restore_starts(
        tmp_path: Path) -> None:
    path = plan_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"repository": "local", "restores": {"blog": "a" * 64}}))
    seen: list[dict[str, int]] = []

    async def restore(name: str, snapshot: str, request: RestoreRequest) -> Accepted:
        seen.append(json.loads(path.read_text())["attempts"])  # on disk before it begins
        return accepted(name)

    async def killed(name: str) -> None:
        raise Killed

    with pytest.raises(Killed):
        await run_plan(tmp_path, restore, killed, lambda *a: None, outcome=lambda op: None)
    assert seen == [{"blog": 1}]
    assert json.loads(path.read_text())["attempts"] == {"blog": 1}


async def test_waiting_for_the_engine_spends_no_attempt(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A server killed again and again while the engine is down keeps all its attempts."""
    path = plan_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"repository": "local", "restores": {"blog": "a" * 64}}))
    waits = 0

    async def killed_on_the_second_wait(seconds: float) -> None:
        nonlocal waits
        waits += 1
        if waits % 2 == 0:  # the server is killed while it waits for the engine
            raise Killed

    monkeypatch.setattr(recovery, "asyncio", SimpleNamespace(sleep=killed_on_the_second_wait))

    async def engine_down(name: str, snapshot: str, request: RestoreRequest) -> Accepted:
        raise EngineUnavailable("the Docker engine is not answering")

    async def settle(name: str) -> None:
        return None

    for _ in range(recovery.ATTEMPTS + 1):
        with pytest.raises(Killed):
            await run_plan(tmp_path, engine_down, settle, lambda *a: None,
                           outcome=lambda op: None)
        assert json.loads(path.read_text())["attempts"] == {"blog": 0}
    seen: list[dict[str, int]] = []

    async def engine_up(name: str, snapshot: str, request: RestoreRequest) -> Accepted:
        seen.append(json.loads(path.read_text())["attempts"])  # the try in flight counts
        return accepted(name)

    restored = await run_plan(tmp_path, engine_up, settle, lambda *a: None,
                              outcome=lambda op: ("succeeded", None))
    assert restored == ["blog"] and seen == [{"blog": 1}] and not path.exists()


async def test_the_third_interrupted_attempt_is_the_last(tmp_path: Path) -> None:
    path = plan_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"repository": "local",
                                "restores": {"blog": "a" * 64, "wiki": "b" * 64}}))
    calls: list[str] = []
    states: dict[str, tuple[str, str | None]] = {}
    reports: list[tuple[str, str, str]] = []
    alerts: list[tuple[str, str, bool, dict[str, object]]] = []

    async def restore(name: str, snapshot: str, request: RestoreRequest) -> Accepted:
        calls.append(name)
        states[f"op-{name}"] = ("running", None)
        return accepted(name)

    async def killed(name: str) -> None:  # blog's restore takes the server down every time
        raise Killed

    for attempt in (1, 2, 3):
        with pytest.raises(Killed):
            await run_plan(tmp_path, restore, killed, lambda *a: None, outcome=states.get)
        assert calls == ["blog"] * attempt
        assert json.loads(path.read_text())["attempts"] == {"blog": attempt}
        states["op-blog"] = ("interrupted", "StackHub stopped while this operation ran")

    async def settle(name: str) -> None:
        states[f"op-{name}"] = ("succeeded", None)

    restored = await run_plan(tmp_path, restore, settle, lambda *a: alerts.append(a),
                              outcome=states.get, report=lambda *a: reports.append(a))
    assert calls == ["blog"] * 3 + ["wiki"]  # blog not a fourth time; the plan goes on
    assert restored == ["wiki"] and not path.exists()
    command = "stackhub backup restore blog aaaaaaaaaaaa --repo local --yes"
    assert reports == [("blog", "tried 3 times, interrupted each time", command)]
    assert alerts == [("backup.recovery", "blog", False,
                       {"error": "tried 3 times, interrupted each time", "command": command})]


async def test_a_plan_written_without_counts_is_still_run(tmp_path: Path) -> None:
    """A plan left by an older version has no `attempts`: a begun restore counts as one."""
    path = plan_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"repository": "local", "restores": {
        "blog": "a" * 64, "wiki": "b" * 64}, "operations": {"blog": "op-old"}}))
    states: dict[str, tuple[str, str | None]] = {
        "op-old": ("interrupted", "StackHub stopped while this operation ran")}
    counts: list[dict[str, int]] = []

    async def restore(name: str, snapshot: str, request: RestoreRequest) -> Accepted:
        counts.append(json.loads(path.read_text())["attempts"])
        return accepted(name)

    async def settle(name: str) -> None:
        states[f"op-{name}"] = ("succeeded", None)

    restored = await run_plan(tmp_path, restore, settle, lambda *a: None, outcome=states.get)
    assert restored == ["blog", "wiki"] and not path.exists()
    assert counts == [{"blog": 2}, {"wiki": 1}]  # blog's earlier (interrupted) run counted


def test_the_moved_local_repository_is_found_when_another_is_the_default(
        tmp_path: Path) -> None:
    """`backup repo default` may have made a second disk's repository the default: a moved
    `local` is still StackHub's own, and another local repository is never repointed."""
    db = _db(tmp_path / "a.db", [("local", "/old/repo", "local", 0),
                                 ("disk2", "/mnt/gone/repo", "local", 1)])
    moved = tmp_path / "disk" / "repo"
    assert recorded_repository(db, Repository(name="r", url=str(moved),
                                              password_file=tmp_path / "p")) == "local"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        urls = dict(conn.execute("SELECT name, url FROM backup_repositories").fetchall())
    assert urls == {"local": str(moved), "disk2": "/mnt/gone/repo"}
