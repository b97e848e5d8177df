"""Start an operation and follow it to its end with progress bars (install, retry, remove)."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from stackhub.cli.client import Client, ClientError
from stackhub.cli.humanize import duration, size
from stackhub.cli.output import err_console

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

DEADLINE = 3600.0
POLL_INTERVAL = 0.5
STREAM_SILENCE = 30.0
"""The server pings every 5 s; this much silence means the connection is gone: poll instead."""
_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""Terminal escape sequences and control characters, dropped from printed log lines."""


class Bars:
    """Rich progress bars for one operation: overall plus one per image pulled."""

    def __init__(self, progress: Progress) -> None:
        """Add the overall bar."""
        self.progress = progress
        self.overall = progress.add_task("operation", total=100)
        self.images: dict[str, TaskID] = {}

    def update(self, kind: str, data: dict[str, Any]) -> None:
        """Move the bars for one event line; print a `log` event's text above them."""
        if kind == "log" and not self.progress.disable:
            for line in str(data.get("text", "")).splitlines():
                # store scripts and hooks write it: no terminal escapes, no rich markup
                self.progress.console.print(_CONTROL.sub("", line.rstrip()), markup=False,
                                            highlight=False, emoji=False)
        if kind == "pull":
            image = str(data["image"])
            if image not in self.images:
                self.images[image] = self.progress.add_task(f"pull {image}", total=100)
            self.progress.update(self.images[image], completed=float(data["percent"]))
        if "progress" in data:
            label = f"{data.get('op_kind', 'operation')}: {data.get('step') or kind}"
            if data.get("waiting"):
                label += " for " + ", ".join(_waited(w) for w in data["waiting"])
            detail = transfer(data)
            if detail:
                label += f" ({detail})"
            self.progress.update(self.overall, completed=float(data["progress"]),
                                 description=label)


Result = tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]


def _number(value: object) -> float | None:
    """Return a JSON number as a float (None for anything else, booleans included)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def transfer(data: dict[str, Any]) -> str:
    """Say how far a transfer is (restic's bytes and ETA): "1.2 GiB / 3.4 GiB, ETA 2m 05s"."""
    done, total = _number(data.get("bytes_done")), _number(data.get("bytes_total"))
    eta = _number(data.get("seconds_remaining"))
    parts = []
    if done is not None and total:
        parts.append(f"{size(done)} / {size(total)}")
    elif done is not None:
        parts.append(size(done))
    elif total:
        parts.append(f"{size(total)} in all")
    if eta is not None:
        parts.append(f"ETA {duration(eta)}")
    return ", ".join(parts)


def _waited(item: dict[str, str]) -> str:
    """Say what the install waits for, in the server's own words (apps/readiness.py)."""
    from stackhub.apps.readiness import Wait

    return str(Wait(service=str(item.get("service", "")), reason=str(item.get("reason", ""))))


def run_operation(client: Client, start: Callable[[], dict[str, Any]], *, quiet: bool,
                  announce: Callable[[dict[str, Any]], None] | None = None) -> Result:
    """Start an operation and follow its event stream to the end.

    Returns what the start answered, the operation's final record, and the instance's view
    after a success (None otherwise, or once removed). `announce` prints what started, once
    the stream is open.

    The stream begins with the operation's journaled state, so whatever happened between the
    start and the stream opening is reflected, however fast the operation is. It is opened
    before rich loads (~40 ms on a small machine, spent while the server works), so no live
    event (a fast pull's progress) is missed meanwhile.
    """
    accepted = start()
    op_id = str(accepted["operation"]["id"])
    lines = _open(client, op_id)
    if announce is not None:
        announce(accepted)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn()]
    with Progress(*columns, console=err_console.rich, disable=quiet, transient=False) as progress:
        bars = Bars(progress)
        op, instance = (lines and _draw(lines, bars)) or _poll(client, op_id)
        if op["state"] == "succeeded":
            progress.update(bars.overall, completed=100)
    return accepted, op, instance


Final = tuple[dict[str, Any], dict[str, Any] | None]


@contextmanager
def _unless_cut_short() -> Iterator[None]:
    """Let a broken or garbled stream end quietly (the caller polls instead); raise the rest."""
    try:
        yield
    except ClientError as err:
        if err.code == "server_unavailable" or err.status:
            raise
    except (ValueError, KeyError, TypeError, OSError):
        pass


def _open(client: Client, op_id: str) -> Iterator[str] | None:
    """Open the operation's event stream: the server subscribes, then sends the first line."""
    lines = client.stream_lines(f"/api/operations/{op_id}/events", read_timeout=STREAM_SILENCE)
    with _unless_cut_short():
        first = next(lines, None)
        return None if first is None else itertools.chain([first], lines)
    return None


def _draw(lines: Iterator[str], bars: Bars) -> Final | None:
    """Draw the operation's event lines; return its end (record, instance), None if cut short."""
    with _unless_cut_short():
        for line in lines:
            if not line:
                continue
            message = json.loads(line)
            kind, data = str(message["kind"]), message["data"]
            if kind == "result":
                return dict(data["operation"]), data["instance"]
            if kind != "ping":
                bars.update(kind, data)
    return None


def _poll(client: Client, op_id: str) -> Final:
    """Read the operation's journal until it ends (when the stream was cut short)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        op: dict[str, Any] = client.request("GET", f"/api/operations/{op_id}")
        if op["state"] != "running":
            instance = client.request("GET", f"/api/instances/{op['instance']}") \
                if op["state"] == "succeeded" and op["kind"] != "remove" \
                and not str(op["instance"]).startswith("@") else None  # @system, @gateway
            return op, instance
        time.sleep(POLL_INTERVAL)
    raise ClientError("gave up waiting for the operation after an hour")
