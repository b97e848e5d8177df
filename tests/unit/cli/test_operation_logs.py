"""The CLI prints an operation's `log` events (hooks, scripts) as plain lines above its bars."""

from __future__ import annotations

import io
import json

from rich.console import Console
from rich.progress import Progress

from stackhub.cli import operations

LOG = "pre-install: fetching seed\n[red]done[/red]\x1b[2J ok\n"
DONE = {"id": "op1", "state": "succeeded", "kind": "install", "instance": "blog"}


def _lines(*events: dict[str, object]) -> list[str]:
    return [json.dumps(e) for e in events]


def _follow(*, quiet: bool) -> tuple[str, operations.Final | None]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    events = _lines(
        {"kind": "step", "data": {"op_kind": "install", "progress": 40, "step": "hooks"}},
        {"kind": "log", "data": {"op_kind": "install", "step": "hooks", "text": LOG}},
        {"kind": "ping", "data": {}},
        {"kind": "result", "data": {"operation": DONE, "instance": None}},
    )
    with Progress(console=console, disable=quiet) as progress:
        final = operations._draw(iter(events), operations.Bars(progress))
    return out.getvalue(), final


def test_log_events_print_as_plain_lines() -> None:
    text, final = _follow(quiet=False)
    assert final == (DONE, None)
    assert "pre-install: fetching seed" in text
    assert "[red]done[/red] ok" in text  # markup shown as written, not interpreted
    assert "\x1b[2J" not in text  # a store script cannot clear or drive the terminal


def test_log_events_are_silent_in_json_mode() -> None:
    text, final = _follow(quiet=True)
    assert final == (DONE, None)
    assert "fetching seed" not in text and "done" not in text
