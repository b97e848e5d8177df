"""Units of hot backups and repository checks: the stored spec, excludes, damaged packs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from stackhub.adapters.restic import Repository, ResticCli, damaged_packs
from stackhub.backup.flows import BackupFlows
from stackhub.errors import Invalid

from .test_restore_checks import _record

REPO = Repository(name="local", url="/nonexistent/repo", password_file=Path("/x"))
PACK = "385e16d8e06acdbc755900fbf335182e4d2a30246ceb83dd21142688421aeafc"
OTHER = "af055a4f0bf95241f411dc623fc751bc93977c13a6b6f51c85f62d112def34d3"


def test_the_stored_backup_section_selects_hot_mode() -> None:
    record = _record("web", "official/web")
    assert BackupFlows.hot_spec(record) is None
    hot = replace(record, definition={"backup": {"service": "db", "dump": ["pg_dump"],
                                                 "skip": ["db"]}})
    spec = BackupFlows.hot_spec(hot)
    assert spec is not None and (spec.service, spec.dump, spec.timeout) == ("db", ["pg_dump"],
                                                                            600)
    broken = replace(record, definition={"backup": {"service": "db", "dump": "rm -rf /"}})
    with pytest.raises(Invalid, match="backup section cannot be read"):
        BackupFlows.hot_spec(broken)


@pytest.mark.parametrize("exclude", [Path("relative/db"), Path("/data/appdata/a/*.db"),
                                     Path("/data/appdata/a/[x]")])
async def test_excludes_must_be_exact_absolute_paths(exclude: Path) -> None:
    with pytest.raises(Invalid, match="absolute path without glob"):
        await ResticCli("restic").backup(REPO, ["appdata/a"], cwd=Path("/data"), tags=[],
                                         host="stackhub", excludes=[exclude])


def test_damaged_packs_are_read_from_the_check_report() -> None:
    report = (f"read all data\nPack ID does not match, want {PACK}, got {'1' * 64}\n"
              f"pack {OTHER} contains 2 errors: [blob x: decrypting blob failed]\n"
              f"pack {PACK} contains 1 errors\nFatal: repository contains errors\n")
    assert damaged_packs(report) == [PACK, OTHER]
    assert damaged_packs("no errors were found\n") == []
