"""Long streams end once their caller's credential or role no longer allows them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import pytest
from fastapi.testclient import TestClient

from stackhub.adapters.fakes import FakeCompose
from stackhub.api import streams
from stackhub.api.app import create_app
from stackhub.auth.models import SetupRequest
from stackhub.services import Services

from ..support import app_request


class Source:
    """An async stream that yields `items`, then stays quiet until closed; records closing."""

    def __init__(self, *items: str, quiet: bool = True) -> None:
        self.items = items
        self.quiet = quiet
        self.closed = False

    async def lines(self) -> AsyncIterator[str]:
        try:
            for item in self.items:
                yield item
            if self.quiet:
                await asyncio.Event().wait()  # a log with nothing more to say
        finally:
            self.closed = True


async def collect(stream: AsyncIterator[str], limit: float = 5.0) -> list[str]:
    async def run() -> list[str]:
        return [item async for item in stream]

    return await asyncio.wait_for(run(), limit)


async def test_a_stream_passes_through_while_allowed_and_ends_with_its_source() -> None:
    source = Source("a\n", "b\n", quiet=False)
    checks: list[bool] = []

    def allowed() -> bool:
        checks.append(True)
        return True

    assert await collect(streams.guarded(source.lines(), allowed, every=0.01)) == ["a\n", "b\n"]
    assert source.closed


async def test_a_quiet_stream_ends_when_access_ends_and_its_source_is_closed() -> None:
    source = Source("first\n")
    access = {"ok": True}
    stream = streams.guarded(source.lines(), lambda: access["ok"], every=0.02)
    assert await anext(stream) == "first\n"
    await asyncio.sleep(0.1)  # several checks pass while nothing is said
    access["ok"] = False
    assert await collect(stream) == []  # ends at the next check, silence or not
    assert source.closed


async def test_a_busy_stream_is_checked_too() -> None:
    async def endless() -> AsyncIterator[str]:
        while True:
            yield "tick\n"
            await asyncio.sleep(0.001)

    access = {"ok": True}
    stream = streams.guarded(endless(), lambda: access["ok"], every=0.02)
    seen = [await anext(stream) for _ in range(5)]
    access["ok"] = False
    rest = await collect(stream)
    assert seen == ["tick\n"] * 5 and len(rest) < 200


async def test_a_client_leaving_closes_the_source() -> None:
    source = Source("x\n")
    stream = streams.guarded(source.lines(), lambda: True, every=10)
    assert await anext(stream) == "x\n"
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.01)
    waiting.cancel()  # the server cancels the response when the client goes away
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await stream.aclose()
    assert source.closed


# -- over HTTP --------------------------------------------------------------------------------

@pytest.fixture
def api(services: Services) -> Iterator[TestClient]:
    app = create_app(services.paths, services=services, public_host="host.test")
    with TestClient(app) as client:
        yield client


def user_token(services: Services) -> tuple[str, str]:
    """Make the first admin account and an API token for it; return (secret, token id)."""
    setup = services.auth.setup_path.read_text().strip()
    services.auth.setup(SetupRequest(setup_token=setup, username="alice",
                                     password="a-long-enough-password"), ip="ip", user_agent="ua")
    secret, record = services.auth.tokens.create("alice", "laptop", expires_days=None)
    return secret, record.id


def test_an_operation_stream_ends_once_its_token_is_revoked(
        api: TestClient, services: Services, compose: FakeCompose,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "RECHECK_EVERY", 0.05)
    secret, token_id = user_token(services)
    headers = {"Authorization": f"Bearer {secret}"}
    gate = compose.hold("up")  # the install stays running
    try:
        accepted = api.post("/api/instances", headers=headers,
                            json=app_request().model_dump(mode="json"))
        assert accepted.status_code == 202, accepted.text
        op_id = accepted.json()["operation"]["id"]
        with api.stream("GET", f"/api/operations/{op_id}/events", headers=headers) as answer:
            assert answer.status_code == 200
            lines = (line for line in answer.iter_lines() if line)
            kinds = [json.loads(next(lines))["kind"]]
            services.auth.tokens.revoke("alice", token_id)  # while the stream is open
            kinds += [json.loads(line)["kind"] for line in lines]
        assert kinds[0] == "state" and "result" not in kinds  # cut off, not finished
        assert api.get(f"/api/operations/{op_id}", headers=headers).status_code == 401
    finally:
        gate.set()
