"""The light key with the real restic: added, used, and never in the way of the password."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
from pathlib import Path

from stackhub.adapters.restic import Repository, ResticCli


def _restic(repo: Repository, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["restic", *repo.args(), *args], capture_output=True, text=True,
                          check=False, timeout=120)


def test_the_light_key_opens_the_repository_and_the_password_alone_still_does(
        tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text(secrets.token_urlsafe(32) + "\n")
    repo = Repository(name="local", url=str(tmp_path / "repo"), password_file=password)
    cli = ResticCli()
    asyncio.run(cli.init(repo))
    key_id = asyncio.run(cli.add_light_key(repo))
    keys = sorted(p.name for p in (tmp_path / "repo" / "keys").iterdir())
    assert key_id in keys and len(keys) == 2
    assert not list((tmp_path / "repo").glob(".stackhub-key-*"))  # no temp file left
    assert (tmp_path / "repo" / "keys" / key_id).stat().st_mode & 0o777 == 0o400
    light = Repository(name="local", url=repo.url, password_file=password, key_hint=key_id)

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "file").write_text("kept")
    summary = asyncio.run(cli.backup(light, ["data"], cwd=tmp_path, tags=["t"], host="h"))
    listed = json.loads(_restic(light, "key", "list", "--json").stdout)
    assert [k["id"] for k in listed if k["current"]] == [key_id[:8]]  # restic used it

    # the recovery kit (the password, no hint) opens the repository with restic's own key
    plain = json.loads(_restic(repo, "key", "list", "--json").stdout)
    assert len(plain) == 2 and summary.snapshot_id in _restic(repo, "snapshots").stdout
    # a light key gone (removed by hand) only makes restic look further
    (tmp_path / "repo" / "keys" / key_id).chmod(0o600)
    (tmp_path / "repo" / "keys" / key_id).unlink()
    assert summary.snapshot_id in _restic(light, "snapshots").stdout
    assert _restic(light, "check").returncode == 0
