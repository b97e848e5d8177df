"""Which repositories get StackHub's light restic key, and what a failure to add one does."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackhub.adapters.restic import Repository
from stackhub.backup.models import RepositoryCreate
from stackhub.errors import RepositoryError
from stackhub.services import Services


class KeyRecorder:
    """Records restic calls that would create or open a repository and add a light key."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.added: list[str] = []
        self.inits: list[str] = []

    async def init(self, repo: Repository) -> None:
        self.inits.append(repo.name)
        Path(repo.url).mkdir(parents=True, exist_ok=True)
        (Path(repo.url) / "config").write_text("x")

    async def open(self, repo: Repository) -> None:
        return None

    async def add_light_key(self, repo: Repository) -> str:
        self.added.append(repo.name)
        if self.fail:
            raise RepositoryError("cannot write the key")
        return f"{len(self.added):064x}"


async def test_the_default_repository_gets_the_light_key_once_and_names_it(
        live: Services) -> None:
    fake = KeyRecorder()
    live.backups.restic = fake  # type: ignore[assignment]
    repo = await live.backups.ready(live.backups.repos.handle(None))
    assert fake.inits == ["local"] and fake.added == ["local"]
    assert repo.key_hint == f"{1:064x}" and "--key-hint" in repo.args()
    again = await live.backups.ready(live.backups.repos.handle(None))
    assert fake.added == ["local"] and again.key_hint == repo.key_hint  # kept, not re-added
    assert (live.paths.secrets / "backup" / "local.key-hint").stat().st_mode & 0o777 == 0o600


async def test_a_repository_with_the_users_password_gets_no_light_key(
        live: Services, tmp_path: Path) -> None:
    fake = KeyRecorder()
    live.backups.restic = fake  # type: ignore[assignment]
    await live.backups.add_repository(RepositoryCreate(
        name="mine", url=str(tmp_path / "mine"), password="typed by a person"))
    await live.backups.add_repository(RepositoryCreate(name="made", url=str(tmp_path / "made")))
    assert fake.added == ["made"]
    assert live.backups.repos.handle("mine").key_hint is None
    assert live.backups.repos.handle("made").key_hint == f"{1:064x}"
    live.backups.remove_repository("made")
    assert not (live.paths.secrets / "backup" / "made.key-hint").exists()


async def test_a_light_key_that_cannot_be_added_leaves_the_repository_usable(
        live: Services, caplog: pytest.LogCaptureFixture) -> None:
    fake = KeyRecorder(fail=True)
    live.backups.restic = fake  # type: ignore[assignment]
    repo = await live.backups.ready(live.backups.repos.handle(None))
    assert repo.key_hint is None and "--key-hint" not in repo.args()
    assert "keeps restic's key stretching" in caplog.text
    assert not (live.paths.secrets / "backup" / "local.key-hint").exists()
    await live.backups.ready(live.backups.repos.handle(None))
    assert fake.added == ["local"]  # tried once per process, not on every use


def test_a_hint_that_is_not_a_key_id_is_refused(live: Services) -> None:
    from stackhub.errors import Invalid

    with pytest.raises(Invalid):
        live.backups.repos.keep_light_key("local", "../../etc/passwd")
