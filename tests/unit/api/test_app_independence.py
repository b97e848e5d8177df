"""Apps built in one process share the solved route table, never each other's state."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from stackhub.adapters.fakes import FakeCompose, FakeEngine
from stackhub.api.app import create_app
from stackhub.config import Paths
from stackhub.services import Services, build

ADMIN = {"username": "alice", "password": "alice-has-a-long-password"}


def wired(root: Path) -> Services:
    """Return services on their own data root and fake engine."""
    engine = FakeEngine()
    return build(Paths(root), engine=engine, compose=FakeCompose(engine), public_host="host.test")


def setup_token(services: Services) -> str:
    return (services.paths.secrets / "setup-token").read_text().strip()


def test_two_apps_in_one_process_never_see_each_others_state(tmp_path: Path) -> None:
    first_services, second_services = wired(tmp_path / "one"), wired(tmp_path / "two")
    first = create_app(first_services.paths, services=first_services)
    second = create_app(second_services.paths, services=second_services)
    try:
        assert first.router.routes is not second.router.routes
        with TestClient(first) as one, TestClient(second) as two:
            assert first.state.services is first_services
            assert second.state.services is second_services
            made = one.post("/api/auth/setup", json={"setup_token": setup_token(first_services),
                                                     **ADMIN})
            assert made.status_code == 201, made.text
            # the second app's data root still waits for its own setup; alice is unknown there
            assert two.post("/api/auth/login", json=ADMIN).status_code == 401
            assert one.post("/api/auth/login", json=ADMIN).status_code == 200
            first_token = first_services.paths.admin_token.read_text().strip()
            second_token = second_services.paths.admin_token.read_text().strip()
            assert first_token != second_token
            refused = two.get("/api/users", headers={"Authorization": f"Bearer {first_token}"})
            assert refused.status_code == 401
            listed = two.get("/api/users", headers={"Authorization": f"Bearer {second_token}"})
            assert listed.status_code == 200
            assert ADMIN["username"] not in listed.text
            assert "alice" in one.get("/api/users", headers={
                "Authorization": f"Bearer {first_token}"}).text
            # per-app caches filled by requests stay on the app that answered them
            assert first.state.route_paths is not second.state.route_paths
    finally:
        first_services.db.close()
        second_services.db.close()


def test_a_route_added_to_one_app_is_not_on_another(tmp_path: Path) -> None:
    services = wired(tmp_path / "one")
    first = create_app(services.paths, services=services)
    second = create_app(services.paths, services=services)
    try:
        @first.get("/extra-only-here")
        async def extra() -> dict[str, str]:
            return {"app": "first"}

        def paths_of(app: FastAPI) -> set[str]:
            return {str(getattr(route, "path", "")) for route in app.routes}

        assert "/extra-only-here" in paths_of(first)
        assert "/extra-only-here" not in paths_of(second)
        assert len(first.routes) == len(second.routes) + 1
    finally:
        services.db.close()


def test_every_app_publishes_the_same_schema(tmp_path: Path) -> None:
    services = wired(tmp_path / "one")
    try:
        spec = create_app(services.paths, services=services).openapi()
        again = create_app(services.paths, services=services).openapi()
        assert spec == again
        assert spec is not again
        assert "/api/instances" in spec["paths"]
    finally:
        services.db.close()
