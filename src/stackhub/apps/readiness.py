"""Decide whether a started project is ready, with the rules of ``docker compose up --wait``.

A container is ready when it runs and, if it has a healthcheck, is healthy. An exited container
or an unhealthy one fails the install, except a one-shot service that another service waits on
with ``condition: service_completed_successfully``, which must exit 0. StackHub applies these
rules itself (see ``Flows._wait_ready``) so it can check often and report who it waits for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # light to import: the CLI uses Wait to word its progress label
    from stackhub.adapters.engine import ContainerInfo

_EXIT_CODE = re.compile(r"^Exited \((-?\d+)\)")


@dataclass(frozen=True)
class Wait:
    """One thing the install still waits for: a service and why (a reason code for the UI).

    Reasons: ``containers`` (none exist yet), ``health`` (healthcheck still starting),
    ``completion`` (a one-shot job still running), or the container's state (``created``,
    ``restarting``, ``paused``...).
    """

    service: str
    reason: str

    def __str__(self) -> str:
        """Say it in English (CLI, error messages)."""
        if self.reason == "containers":
            return "the app's containers to appear"
        if self.reason == "health":
            return f"{self.service} to become healthy"
        if self.reason == "completion":
            return f"{self.service} to complete"
        return f"{self.service} ({self.reason})"

    def as_dict(self) -> dict[str, str]:
        """Return the wire form of an event."""
        return {"service": self.service, "reason": self.reason}


@dataclass
class Readiness:
    """The verdict on a project's containers at one moment."""

    ready: bool
    waiting: list[Wait] = field(default_factory=list)
    failure: str | None = None


def one_shot_services(compose: dict[str, Any]) -> set[str]:
    """Return services that others wait on to complete successfully (they may exit 0)."""
    found: set[str] = set()
    for spec in (compose.get("services") or {}).values():
        depends = spec.get("depends_on") if isinstance(spec, dict) else None
        if isinstance(depends, dict):
            for name, condition in depends.items():
                if isinstance(condition, dict) and condition.get("condition") == \
                        "service_completed_successfully":
                    found.add(str(name))
    return found


def exit_code(container: ContainerInfo) -> int | None:
    """Return the exit code the engine reports for an exited container."""
    match = _EXIT_CODE.match(container.status)
    return int(match.group(1)) if match else None


def assess(containers: list[ContainerInfo], one_shot: set[str]) -> Readiness:
    """Judge the containers of one project: ready, still waiting (for whom), or failed."""
    if not containers:
        return Readiness(ready=False, waiting=[Wait("", "containers")])
    waiting: list[Wait] = []
    for c in sorted(containers, key=lambda c: c.name):
        label = c.service or c.name
        if c.state in ("exited", "dead"):
            code = exit_code(c)
            if c.service in one_shot and code == 0:
                continue
            what = f"exit code {code}" if code is not None else c.state
            verb = "did not complete successfully" if c.service in one_shot else "stopped"
            return Readiness(ready=False, failure=f"container {c.name} {verb} ({what}); "
                             "see its logs")
        if c.service in one_shot:
            waiting.append(Wait(label, "completion"))
        elif c.state != "running":
            waiting.append(Wait(label, c.state))
        elif c.health == "unhealthy":
            return Readiness(ready=False, failure=f"container {c.name} is unhealthy; see its "
                             "logs and healthcheck")
        elif c.health == "starting":
            waiting.append(Wait(label, "health"))
    return Readiness(ready=not waiting, waiting=waiting)
