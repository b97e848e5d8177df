"""The instance list and details: ready bytes with strong ETags, 304s, rebuilt only on change."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stackhub.api.app import create_app
from stackhub.apps.snapshot import Snapshot
from stackhub.auth.models import SetupRequest, TokenCreate, UserCreate
from stackhub.services import Services

from ..support import IMAGE, api_body, app_request, compose_request

PW = "a-long-enough-password"
PORTLESS = f"services:\n  web:\n    image: {IMAGE}\n"


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    app = create_app(services.paths, services=services, public_host="host.test")
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def auth(services: Services) -> dict[str, str]:
    return {"Authorization": f"Bearer {services.paths.admin_token.read_text().strip()}"}


def wait_op(client: TestClient, auth: dict[str, str], op_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        op = client.get(f"/api/operations/{op_id}", headers=auth).json()
        if op["state"] != "running":
            return dict(op)
        time.sleep(0.01)
    raise AssertionError("operation did not finish")


def install(client: TestClient, auth: dict[str, str], name: str) -> None:
    accepted = client.post("/api/instances", json=api_body(compose_request(PORTLESS, name=name)),
                           headers=auth)
    assert accepted.status_code == 202, accepted.text
    assert wait_op(client, auth, accepted.json()["operation"]["id"])["state"] == "succeeded"


def snapshot(client: TestClient) -> Snapshot:
    found: Snapshot = client.app.state.instance_snapshot  # type: ignore[attr-defined]
    return found


def test_list_has_an_etag_and_answers_304_until_something_changes(
        client: TestClient, auth: dict[str, str], services: Services) -> None:
    install(client, auth, "alpha")
    install(client, auth, "beta")
    first = client.get("/api/instances", headers=auth)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert first.headers["cache-control"] == "private, no-cache"
    assert first.headers["content-type"] == "application/json"
    # the same content as the models the service builds
    views = services.apps.views(services.apps.records.all())  # what clients get
    assert first.json() == [i.model_dump(mode="json") for i in views]
    assert [i["name"] for i in first.json()] == ["alpha", "beta"]

    again = client.get("/api/instances", headers={**auth, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    for header in (f'W/{etag}', f'"other", {etag}', "*"):
        assert client.get("/api/instances",
                          headers={**auth, "If-None-Match": header}).status_code == 304
    assert client.get("/api/instances",
                      headers={**auth, "If-None-Match": '"other"'}).status_code == 200

    stopped = client.post("/api/instances/beta/stop", headers=auth)
    assert stopped.status_code == 200
    changed = client.get("/api/instances", headers={**auth, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert {i["name"]: i["status"] for i in changed.json()} == {"alpha": "running",
                                                                  "beta": "stopped"}


def test_repeated_reads_do_not_rebuild(client: TestClient, auth: dict[str, str],
                                       services: Services) -> None:
    install(client, auth, "alpha")
    # the install's audit record is written once its operation has ended (a commit: a rebuild)
    deadline = time.monotonic() + 20
    while not services.db.query("SELECT 1 FROM audit WHERE action = 'instance.install'"):
        assert time.monotonic() < deadline, "the install was not audited"
        time.sleep(0.05)
    client.get("/api/instances", headers=auth)
    builds = snapshot(client).builds
    for _ in range(20):
        assert client.get("/api/instances", headers=auth).status_code == 200
        assert client.get("/api/instances/alpha", headers=auth).status_code == 200
    assert snapshot(client).builds == builds


def test_a_database_change_made_elsewhere_is_seen(client: TestClient, auth: dict[str, str],
                                                  services: Services) -> None:
    """A write by another thread's connection, with no event at all, still changes the ETag."""
    install(client, auth, "alpha")
    before = client.get("/api/instances/alpha", headers=auth)
    writer = threading.Thread(target=services.records.set_update_available,
                              args=("alpha", "9.9"))
    writer.start()
    writer.join()
    after = client.get("/api/instances/alpha",
                       headers={**auth, "If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert (after.json()["update_available"], after.json()["latest_version"]) == (True, "9.9")
    assert before.json()["update_available"] is False


def test_details_have_their_own_etag(client: TestClient, auth: dict[str, str]) -> None:
    install(client, auth, "alpha")
    install(client, auth, "beta")
    alpha = client.get("/api/instances/alpha", headers=auth)
    beta = client.get("/api/instances/beta", headers=auth)
    assert alpha.json()["name"] == "alpha" and beta.json()["name"] == "beta"
    assert alpha.headers["etag"] != beta.headers["etag"]
    assert client.get("/api/instances/alpha", headers={
        **auth, "If-None-Match": alpha.headers["etag"]}).status_code == 304
    # a change to beta leaves alpha's ETag as it was
    assert client.post("/api/instances/beta/stop", headers=auth).status_code == 200
    assert client.get("/api/instances/alpha", headers={
        **auth, "If-None-Match": alpha.headers["etag"]}).status_code == 304
    assert client.get("/api/instances/beta", headers={
        **auth, "If-None-Match": beta.headers["etag"]}).status_code == 200
    missing = client.get("/api/instances/nope", headers=auth)
    assert missing.status_code == 404 and "etag" not in missing.headers


def test_removed_instances_leave_the_list(client: TestClient, auth: dict[str, str]) -> None:
    install(client, auth, "alpha")
    etag = client.get("/api/instances", headers=auth).headers["etag"]
    removed = client.delete("/api/instances/alpha", headers=auth)
    assert wait_op(client, auth, removed.json()["operation"]["id"])["state"] == "succeeded"
    after = client.get("/api/instances", headers={**auth, "If-None-Match": etag})
    assert after.status_code == 200 and after.json() == []
    assert client.get("/api/instances/alpha", headers=auth).status_code == 404


def test_members_get_only_their_granted_instances(client: TestClient, auth: dict[str, str],
                                                  services: Services) -> None:
    install(client, auth, "alpha")
    install(client, auth, "beta")
    accounts = services.auth.accounts
    setup = services.auth.setup_path.read_text().strip()
    services.auth.setup(SetupRequest(setup_token=setup, username="alice", password=PW),
                        ip="ip", user_agent="ua")
    owner = services.auth.principal(services.auth.users.get("alice"), via="session")
    accounts.create_user(UserCreate(username="bob", password=PW), actor=owner, ip="")
    accounts.set_grants("bob", ["beta"], actor=owner, ip="")
    bob = services.auth.principal(services.auth.users.get("bob"), via="token")
    token = accounts.create_token(bob, TokenCreate(name="t"), ip="").token
    member = {"Authorization": f"Bearer {token}"}
    listed = client.get("/api/instances", headers=member)
    assert [i["name"] for i in listed.json()] == ["beta"]
    full = client.get("/api/instances", headers=auth)
    assert listed.headers["etag"] != full.headers["etag"]
    assert client.get("/api/instances", headers={
        **member, "If-None-Match": listed.headers["etag"]}).status_code == 304
    assert client.get("/api/instances/alpha", headers=member).status_code == 404
    assert client.get("/api/instances/beta", headers=member).status_code == 200


def test_app_instances_list_like_before(client: TestClient, auth: dict[str, str],
                                        services: Services) -> None:
    """An instance from an app (parameters, a secret masked) encodes as the models do."""
    accepted = client.post("/api/instances", json=api_body(app_request()), headers=auth)
    assert wait_op(client, auth, accepted.json()["operation"]["id"])["state"] == "succeeded"
    listed = client.get("/api/instances", headers=auth).json()
    views = services.apps.views(services.apps.records.all())  # what clients get
    assert listed == [i.model_dump(mode="json") for i in views]
    assert client.get("/api/instances/blog", headers=auth).json() == listed[0]
