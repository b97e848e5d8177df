"""The hot-read fast path (api/fastpath.py) answers exactly as the full FastAPI path does."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from stackhub.api.app import create_app
from stackhub.api.fastpath import FastReads
from stackhub.auth.models import SetupRequest, TokenCreate, UserCreate
from stackhub.services import Services

from ..support import IMAGE, api_body, compose_request

PW = "a-long-enough-password"
PORTLESS = f"services:\n  web:\n    image: {IMAGE}\n"
SKIPPED = ("date", "server")


def without_fast_path(app: FastAPI) -> FastAPI:
    """Take the fast path out of an app that has not served yet."""
    kept = [m for m in app.user_middleware
            if m.cls is not FastReads]  # type: ignore[comparison-overlap]
    assert len(kept) == len(app.user_middleware) - 1
    app.user_middleware = kept
    return app


@pytest.fixture
def clients(services: Services) -> Iterator[tuple[TestClient, TestClient]]:
    fast = create_app(services.paths, services=services, public_host="host.test")
    full = without_fast_path(create_app(services.paths, services=services,
                                        public_host="host.test"))
    with TestClient(fast) as fast_client, TestClient(full) as full_client:
        yield fast_client, full_client


@pytest.fixture
def auth(services: Services) -> dict[str, str]:
    return {"Authorization": f"Bearer {services.paths.admin_token.read_text().strip()}"}


def install(client: TestClient, auth: dict[str, str], name: str) -> None:
    accepted = client.post("/api/instances", json=api_body(compose_request(PORTLESS, name=name)),
                           headers=auth)
    assert accepted.status_code == 202, accepted.text
    op_id = accepted.json()["operation"]["id"]
    deadline = time.monotonic() + 20
    while client.get(f"/api/operations/{op_id}", headers=auth).json()["state"] == "running":
        assert time.monotonic() < deadline, "the install did not finish"
        time.sleep(0.01)


def member_token(services: Services, grants: list[str]) -> dict[str, str]:
    """A member with `grants`, signed in by token."""
    accounts = services.auth.accounts
    setup = services.auth.setup_path.read_text().strip()
    services.auth.setup(SetupRequest(setup_token=setup, username="alice", password=PW),
                        ip="ip", user_agent="ua")
    owner = services.auth.principal(services.auth.users.get("alice"), via="session")
    accounts.create_user(UserCreate(username="bob", password=PW), actor=owner, ip="")
    accounts.set_grants("bob", grants, actor=owner, ip="")
    bob = services.auth.principal(services.auth.users.get("bob"), via="token")
    token = accounts.create_token(bob, TokenCreate(name="t"), ip="").token
    return {"Authorization": f"Bearer {token}"}


def answer(client: TestClient, path: str, headers: dict[str, str]) -> tuple[Any, ...]:
    got = client.get(path, headers=headers)
    kept = {k: v for k, v in got.headers.items() if k not in SKIPPED}
    return got.status_code, got.content, kept


def test_the_fast_path_answers_as_the_full_path(
        clients: tuple[TestClient, TestClient], auth: dict[str, str],
        services: Services) -> None:
    fast, full = clients
    install(fast, auth, "alpha")
    install(fast, auth, "beta")
    member = member_token(services, ["beta"])
    etag = fast.get("/api/instances", headers=auth).headers["etag"]
    cases: list[tuple[str, dict[str, str]]] = [
        ("/api/health", {}),
        ("/api/instances", auth),
        ("/api/instances", {**auth, "If-None-Match": etag}),
        ("/api/instances", {**auth, "If-None-Match": '"other"'}),
        ("/api/instances", member),
        ("/api/instances", {}),  # 401
        ("/api/instances", {"Authorization": "Bearer wrong"}),  # 401
        ("/api/instances", {"Authorization": "Basic x"}),  # 401
        ("/api/instances/alpha", auth),
        ("/api/instances/alpha", member),  # not granted: 404
        ("/api/instances/beta", member),
        ("/api/instances/nobody", auth),  # 404
        ("/api/instances/Bad_Name", auth),  # refused name
        ("/api/instances/alpha/", auth),
        ("/api/instances/", auth),
    ]
    for path, headers in cases:
        assert answer(fast, path, headers) == answer(full, path, headers), (path, headers)


def test_catalog_listings_keep_their_body_and_etag_until_the_database_changes(
        clients: tuple[TestClient, TestClient], auth: dict[str, str],
        services: Services) -> None:
    fast, full = clients
    cases = ["/api/catalog/apps", "/api/catalog/apps?q=web", "/api/catalog/apps?limit=0",
             "/api/catalog/apps?sort=nonsense", "/api/catalog/apps?q=" + "x" * 201]
    for path in cases:
        slow = full.get(path, headers=auth)
        quick = fast.get(path, headers=auth)
        assert (quick.status_code, quick.json()) == (slow.status_code, slow.json()), path
    first = fast.get("/api/catalog/apps?q=web", headers=auth)
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, no-cache"
    again = fast.get("/api/catalog/apps?q=web", headers={**auth, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    # members may not list the catalog: the full path answers them, as before
    member = member_token(services, [])
    assert answer(fast, "/api/catalog/apps", member) == answer(full, "/api/catalog/apps", member)
    assert fast.get("/api/catalog/apps", headers=member).status_code == 403
    # a change to the database drops the kept bodies (the catalog index lives there)
    reads = fast_reads(fast)
    assert b"/api/catalog/apps?q=web" in reads._kept
    install(fast, auth, "alpha")
    assert fast.get("/api/catalog/apps", headers=auth).status_code == 200
    assert list(reads._kept) == [b"/api/catalog/apps?"]


def test_operations_pages_keep_their_body_and_etag_until_the_journal_changes(
        clients: tuple[TestClient, TestClient], auth: dict[str, str],
        services: Services) -> None:
    fast, full = clients
    install(fast, auth, "alpha")
    cases = ["/api/operations", "/api/operations?instance=alpha", "/api/operations?limit=1",
             "/api/operations?kind=install&state=succeeded", "/api/operations?limit=0",
             "/api/operations?state=nonsense", "/api/operations?kind=Bad!"]
    for path in cases:
        assert answer(fast, path, auth)[:2] == answer(full, path, auth)[:2], path
    first = fast.get("/api/operations", headers=auth)
    assert [op["kind"] for op in first.json()["items"]] == ["install"]
    etag = first.headers["etag"]
    again = fast.get("/api/operations", headers={**auth, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    # admin-only: a member gets FastAPI's own refusal
    member = member_token(services, ["alpha"])
    assert answer(fast, "/api/operations", member) == answer(full, "/api/operations", member)
    assert fast.get("/api/operations", headers=member).status_code == 403
    # a new operation is a database change: the next page shows it, with a new ETag
    install(fast, auth, "beta")
    fresh = fast.get("/api/operations", headers={**auth, "If-None-Match": etag})
    assert fresh.status_code == 200 and fresh.headers["etag"] != etag
    assert [op["instance"] for op in fresh.json()["items"]] == ["beta", "alpha"]
    assert answer(fast, "/api/operations", auth)[:2] == answer(full, "/api/operations", auth)[:2]


def fast_reads(client: TestClient) -> FastReads:
    """The FastReads instance in a client's middleware stack."""
    layer: Any = client.app.middleware_stack  # type: ignore[attr-defined]
    while not isinstance(layer, FastReads):
        layer = layer.app
    return layer


def test_unsafe_methods_and_other_routes_take_the_full_path(
        clients: tuple[TestClient, TestClient], auth: dict[str, str]) -> None:
    fast, full = clients
    for method, path in (("HEAD", "/api/instances"), ("POST", "/api/health"),
                         ("GET", "/api/catalog/categories"), ("DELETE", "/api/instances")):
        quick = fast.request(method, path, headers=auth)
        slow = full.request(method, path, headers=auth)
        assert (quick.status_code, quick.content) == (slow.status_code, slow.content), path
