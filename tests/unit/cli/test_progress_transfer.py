"""The CLI's progress line for backups and restores: restic's bytes and ETA in human units."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import Progress

from stackhub.cli import operations
from stackhub.cli.humanize import ago, duration, size

DONE = {"id": "op1", "state": "succeeded", "kind": "backup", "instance": "blog"}
GIB = 1024 ** 3


def test_sizes_durations_and_ages() -> None:
    assert (size(512), size(1536), size(3 * GIB // 2)) == ("512 B", "1.5 KiB", "1.5 GiB")
    assert (duration(45), duration(185), duration(7800), duration(273600)) == (
        "45s", "3m 05s", "2h 10m", "3d 4h")
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert ago("2026-03-01T09:00:00Z", now) == "3 h ago"
    assert ago("2026-02-27T11:00:00Z", now) == "2 d ago"
    assert ago("2026-03-01T11:58:00Z", now) == "2 min ago"
    assert ago("2026-03-01T11:59:30Z", now) == "just now"
    assert ago(None, now) == "never"


def test_transfer_says_bytes_and_eta() -> None:
    assert operations.transfer({"bytes_done": GIB, "bytes_total": 4 * GIB,
                                "seconds_remaining": 125}) == "1.0 GiB / 4.0 GiB, ETA 2m 05s"
    assert operations.transfer({"bytes_done": 2048}) == "2.0 KiB"
    assert operations.transfer({"bytes_total": 5 * 1024 ** 2}) == "5.0 MiB in all"
    assert operations.transfer({"bytes_done": 0, "bytes_total": 0,
                                "seconds_remaining": 0}) == "0 B, ETA 0s"
    assert operations.transfer({"progress": 40, "bytes_done": True}) == ""  # not a number
    assert operations.transfer({"progress": 40}) == ""


def _follow(*, quiet: bool) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    events = [json.dumps(e) for e in (
        {"kind": "progress", "data": {"op_kind": "backup", "step": "snapshot", "progress": 55,
                                      "percent": 50, "bytes_done": 3 * GIB // 2,
                                      "bytes_total": 3 * GIB, "seconds_remaining": 90}},
        {"kind": "result", "data": {"operation": DONE, "instance": None}},
    )]
    with Progress(console=console, disable=quiet, auto_refresh=False) as progress:
        bars = operations.Bars(progress)
        operations._draw(iter(events), bars)
        progress.refresh()
        description = progress.tasks[0].description
    assert description == "backup: snapshot (1.5 GiB / 3.0 GiB, ETA 1m 30s)"
    return out.getvalue()


def test_the_bar_shows_bytes_and_eta() -> None:
    assert "1.5 GiB / 3.0 GiB, ETA 1m 30s" in _follow(quiet=False)


def test_nothing_is_drawn_with_json() -> None:
    assert _follow(quiet=True) == ""
