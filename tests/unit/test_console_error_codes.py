"""Every error code the API can send has a title and a message in both console languages."""

from __future__ import annotations

import json
from pathlib import Path

import stackhub.api.app  # noqa: F401  (every domain, with its own errors)
from stackhub import errors
from stackhub.auth.ratelimit import RateLimited

LOCALES = Path(__file__).resolve().parents[2] / "web" / "src" / "i18n" / "locales"


def _codes() -> set[str]:
    found: set[str] = set()
    todo: list[type[errors.StackHubError]] = [errors.StackHubError]
    while todo:
        cls = todo.pop()
        found.add(cls.code)
        todo.extend(cls.__subclasses__())
    return found | {RateLimited.code}


def test_every_error_code_is_translated() -> None:
    codes = _codes()
    assert {"not_found", "unauthorized", "rate_limited"} <= codes
    for name in ("en.json", "zh-CN.json"):
        table = json.loads((LOCALES / name).read_text())["errors"]
        assert not [c for c in codes if c not in table], name
        assert not [c for c in codes - {"error"} if c not in table["messages"]], name
