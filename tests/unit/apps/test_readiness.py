"""Readiness of a started project, by the rules of compose --wait."""

from __future__ import annotations

import pytest

from stackhub.adapters.engine import ContainerInfo
from stackhub.apps.readiness import Readiness, Wait, assess, exit_code, one_shot_services


def box(service: str, state: str = "running", health: str | None = None,
        status: str = "") -> ContainerInfo:
    return ContainerInfo(id=service, name=f"stackhub-blog-{service}-1", service=service,
                         state=state, health=health, status=status)


def test_one_shot_services_are_those_waited_on_to_complete() -> None:
    compose = {"services": {
        "web": {"depends_on": {"migrate": {"condition": "service_completed_successfully"},
                               "db": {"condition": "service_healthy"}}},
        "worker": {"depends_on": ["db"]},
        "migrate": {}, "db": {}}}
    assert one_shot_services(compose) == {"migrate"}
    assert one_shot_services({}) == set()


@pytest.mark.parametrize(("status", "code"), [
    ("Exited (0) 2 seconds ago", 0), ("Exited (137) 1 second ago", 137), ("Up 3 seconds", None),
    ("", None)])
def test_exit_code_from_the_engine_status(status: str, code: int | None) -> None:
    assert exit_code(box("web", "exited", status=status)) == code


@pytest.mark.parametrize(("containers", "verdict"), [
    ([], Readiness(False, [Wait("", "containers")])),
    ([box("web"), box("db", health="healthy")], Readiness(True, [])),
    ([box("web"), box("db", health="starting")], Readiness(False, [Wait("db", "health")])),
    ([box("web", "created"), box("db", "restarting")],
     Readiness(False, [Wait("db", "restarting"), Wait("web", "created")])),
    ([box("web"), box("migrate", "exited", status="Exited (0) 1 second ago")],
     Readiness(False, failure="container stackhub-blog-migrate-1 stopped (exit code 0); see "
               "its logs")),
])
def test_assess_without_one_shot_services(containers: list[ContainerInfo],
                                          verdict: Readiness) -> None:
    assert assess(containers, set()) == verdict


def test_an_unhealthy_container_fails() -> None:
    verdict = assess([box("web"), box("db", health="unhealthy")], set())
    assert not verdict.ready
    assert verdict.failure == "container stackhub-blog-db-1 is unhealthy; see its logs and " \
        "healthcheck"


def test_an_exited_container_fails_with_its_code() -> None:
    verdict = assess([box("web", "exited", status="Exited (3) 1 second ago")], set())
    assert verdict.failure == "container stackhub-blog-web-1 stopped (exit code 3); see its logs"


def test_one_shot_services_must_exit_zero() -> None:
    done = box("migrate", "exited", status="Exited (0) 1 second ago")
    assert assess([box("web"), done], {"migrate"}) == Readiness(True, [])
    failed = box("migrate", "exited", status="Exited (2) 1 second ago")
    assert assess([box("web"), failed], {"migrate"}).failure == (
        "container stackhub-blog-migrate-1 did not complete successfully (exit code 2); see its "
        "logs")
    assert assess([box("web"), box("migrate")], {"migrate"}) == Readiness(
        False, [Wait("migrate", "completion")])


@pytest.mark.parametrize(("wait", "text"), [
    (Wait("", "containers"), "the app's containers to appear"),
    (Wait("db", "health"), "db to become healthy"),
    (Wait("migrate", "completion"), "migrate to complete"),
    (Wait("web", "restarting"), "web (restarting)")])
def test_waits_in_english(wait: Wait, text: str) -> None:
    assert str(wait) == text
    assert wait.as_dict() == {"service": wait.service, "reason": wait.reason}


def test_a_dead_container_without_a_code_fails() -> None:
    verdict = assess([box("web", "dead", status="Dead")], set())
    assert verdict.failure == "container stackhub-blog-web-1 stopped (dead); see its logs"
