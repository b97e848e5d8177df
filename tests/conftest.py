"""Fixtures for every suite: servers under test never start a gateway unless a test asks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _gateway_off_by_default() -> Iterator[None]:
    """Keep Caddy off ports 80/443 (STACKHUB_GATEWAY=0) unless set; test_gateway turns it on."""
    before = os.environ.get("STACKHUB_GATEWAY")
    os.environ.setdefault("STACKHUB_GATEWAY", "0")
    yield
    if before is None:
        os.environ.pop("STACKHUB_GATEWAY", None)
