"""Every operation kind and step name the server records has a label in both console languages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import stackhub.api.app  # noqa: F401  (every domain, with its operation kinds)
from stackhub.operations.runner import KINDS

ROOT = Path(__file__).resolve().parents[2]
LOCALES = ROOT / "web" / "src" / "i18n" / "locales"
STEP_CALL = re.compile(r"\.step\(\s*\"([a-z][a-z_-]*)\"")


def _step_names() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "src" / "stackhub").rglob("*.py"):
        found.update(STEP_CALL.findall(path.read_text()))
    return found


def test_every_operation_kind_is_labelled() -> None:
    kinds = set(KINDS)
    assert {"install", "backup", "protect"} <= kinds
    for name in ("en.json", "zh-CN.json"):
        table = json.loads((LOCALES / name).read_text())["operations"]
        assert sorted(k for k in kinds if not isinstance(table.get(k), str)) == [], name


def test_every_step_name_is_labelled() -> None:
    steps = _step_names()
    assert {"pull", "snapshot", "route"} <= steps
    for name in ("en.json", "zh-CN.json"):
        table = json.loads((LOCALES / name).read_text())["activity"]["stepNames"]
        assert sorted(s for s in steps if s not in table) == [], name
