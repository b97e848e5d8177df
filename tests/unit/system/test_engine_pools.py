"""The engine's default address pools: merged into daemon.json, an admin's own setting kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stackhub.errors import Invalid
from stackhub.system.engine_pools import KEY, POOLS, configure, main


def test_pools_are_added_to_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "docker" / "daemon.json"
    assert configure(path) is True
    assert json.loads(path.read_text()) == {KEY: POOLS}
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert not path.with_name("daemon.json.stackhub-backup").exists()


def test_other_settings_are_kept_and_the_file_backed_up(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    original = '{"registry-mirrors": ["http://127.0.0.1:5000"], "log-driver": "local"}\n'
    path.write_text(original)
    assert configure(path) is True
    assert json.loads(path.read_text()) == {"registry-mirrors": ["http://127.0.0.1:5000"],
                                            "log-driver": "local", KEY: POOLS}
    assert (tmp_path / "daemon.json.stackhub-backup").read_text() == original
    assert configure(path) is False, "a second run changes nothing"


def test_an_admins_own_pools_are_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "daemon.json"
    own = {KEY: [{"base": "10.99.0.0/16", "size": 26}]}
    path.write_text(json.dumps(own))
    assert main(["engine_pools", str(path)]) == 0
    assert json.loads(path.read_text()) == own
    assert "kept as it is" in capsys.readouterr().out


def test_an_unreadable_file_is_left_alone(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "daemon.json"
    for text in ('{"log-driver": ', '["not", "an", "object"]'):
        path.write_text(text)
        with pytest.raises(Invalid, match="StackHub left it alone"):
            configure(path)
        assert path.read_text() == text
    assert main(["engine_pools", str(path)]) == 1
    assert "left it alone" in capsys.readouterr().err
