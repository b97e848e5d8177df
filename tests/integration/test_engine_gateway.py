"""The gateway across an engine restart: it keeps answering, and the app answers again after.

Real Caddy (the server's child, not a container) in front of an app on a private dockerd
(tests/integration/second_engine.py), so the restart disturbs no other suite.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.gateway_env import AcmeLab, fetch, install_web, internal_root, running_lab
from tests.integration.second_engine import PatientServer, SecondEngine, second_engine
from tests.integration.test_gateway import BASE
from tests.integration.test_outage import until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AcmeLab]:
    yield from running_lab(tmp_path_factory)


@pytest.fixture
def engine2() -> Iterator[SecondEngine]:
    with second_engine() as engine:
        yield engine


def answer(lab: AcmeLab, host: str, root: Path, path: str = "/") -> httpx.Response | None:
    try:
        return fetch(lab, host, root, path)
    except httpx.HTTPError:
        return None


def test_an_app_behind_the_gateway_answers_again_after_the_engine_restarts(
        lab: AcmeLab, engine2: SecondEngine, tmp_path: Path) -> None:
    srv = PatientServer(tmp_path / "data", extra_env={**lab.env(), **engine2.env})
    srv.start()
    try:
        install_web(srv)
        result = srv.cli("domain", "base", BASE, **lab.env())
        assert result.returncode == 0, result.stderr + result.stdout
        root = internal_root(srv, tmp_path)
        host = f"web.{BASE}"
        until(lambda: (r := answer(lab, host, root)) is not None and r.status_code == 200,
              30, "the app answers through the gateway")
        assert fetch(lab, host, root).text.strip() == "hello from web"

        engine2.stop()
        until(lambda: srv.api("GET", "/api/health").json()["engine"] is False, 5,
              "the outage is seen")
        # the gateway itself keeps serving: the console's name answers and says why
        console = fetch(lab, f"console.{BASE}", root, "/api/health")
        assert console.status_code == 200 and console.json()["engine"] is False
        engine2.wait_stopped()
        began = time.monotonic()
        down = fetch(lab, host, root)  # the app is gone: a clear error page, at once
        assert down.status_code in (502, 503), (down.status_code, down.text[:200])
        assert time.monotonic() - began < 5

        answered = engine2.start()
        back = until(lambda: (r := answer(lab, host, root)) is not None
                     and r.status_code == 200, 30, "the app answers again")
        print(f"\nthe app answered through the gateway {back:.2f} s after docker info did")
        assert fetch(lab, host, root).text.strip() == "hello from web"
        assert time.monotonic() - answered < 30
    finally:
        srv.stop()
