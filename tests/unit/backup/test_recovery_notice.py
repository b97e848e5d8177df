"""After restore-system, an app the server's start could not restore raises a console
notification naming the app and the command to run (the real services and notify store)."""

from __future__ import annotations

import json
from typing import Any

from stackhub.apps.models import Accepted
from stackhub.auth.models import Principal, Role
from stackhub.backup.models import RestoreRequest
from stackhub.backup.recovery import plan_path
from stackhub.errors import RiskNotAccepted
from stackhub.notify.models import Kind
from stackhub.notify.texts import render
from tests.unit.backup.test_schedules import wired

__all__ = ["wired"]  # the fixture, shared with test_schedules.py
ADMIN = Principal(name="alice", role=Role.ADMIN, via="session")


async def test_a_refused_start_time_restore_notifies_with_the_command(wired: Any) -> None:
    live, _clock, _fake, audits = wired
    service = live.backups
    path = plan_path(live.paths.root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"repository": "local", "restores": {"blog": "a" * 64}}))

    async def refuse(name: str, snapshot: str, request: RestoreRequest) -> Accepted:
        raise RiskNotAccepted("the backup has risky options", details={"digest": "sha256:ab"})

    service.restore = refuse
    assert await service.recover_instances() == []
    [notice] = [n for n in live.notify.listing(ADMIN).items if n.kind is Kind.RECOVERY_FAILED]
    command = f"stackhub backup restore blog {'a' * 12} --repo local --yes --accept-risks sha256:ab"
    assert notice.params == {"instance": "blog", "error": "the backup has risky options",
                             "command": command}
    assert notice.link == "/apps/blog" and notice.severity.value == "error"
    assert notice.text == render(Kind.RECOVERY_FAILED, notice.params)
    assert "blog was not restored" in notice.text and command in notice.text
    assert audits[-1][:3] == ("backup.recovery", "blog", False)
    assert not path.exists()


async def test_a_restore_interrupted_three_times_notifies_with_the_command(wired: Any) -> None:
    live, _clock, _fake, audits = wired
    service = live.backups
    path = plan_path(live.paths.root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"repository": "local", "restores": {"blog": "a" * 64},
                                "operations": {"blog": "no-such-op"}, "attempts": {"blog": 3}}))
    calls: list[str] = []

    async def restore(name: str, snapshot: str, request: RestoreRequest) -> Accepted:
        calls.append(name)
        raise AssertionError("not tried a fourth time")

    service.restore = restore
    assert await service.recover_instances() == [] and calls == []
    [notice] = [n for n in live.notify.listing(ADMIN).items if n.kind is Kind.RECOVERY_FAILED]
    command = f"stackhub backup restore blog {'a' * 12} --repo local --yes"
    assert notice.params == {"instance": "blog", "error": "tried 3 times, interrupted each time",
                             "command": command}
    assert "tried 3 times, interrupted each time" in notice.text and command in notice.text
    assert audits[-1][:3] == ("backup.recovery", "blog", False)
    assert not path.exists()
