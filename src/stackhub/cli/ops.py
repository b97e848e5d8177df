"""``stackhub op ...``: list and show journaled operations (the activity history)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from stackhub.cli.client import Client, ClientError
from stackhub.cli.output import console, emit_json, escape, fail, table

app = typer.Typer(help="List and inspect operations (installs, removals, restarts...).",
                  no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
STATES = ("running", "succeeded", "failed", "interrupted")


def _seconds(value: float | None) -> str:
    """Say a duration briefly: 850 ms, 4.2 s, 3 min 5 s."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds} s"


def _when(stamp: str) -> str:
    """Show an ISO time as 'YYYY-MM-DD HH:MM:SS' (UTC)."""
    return stamp[:19].replace("T", " ")


@app.command("list")
def list_cmd(instance: Annotated[str | None, typer.Option(
                 "--instance", help="Only operations on this instance.")] = None,
             kind: Annotated[str | None, typer.Option(
                 "--kind", help="install, remove, start, stop, restart...")] = None,
             state: Annotated[str | None, typer.Option(
                 "--state", help="running, succeeded, failed or interrupted.")] = None,
             limit: Annotated[int, typer.Option("--limit", min=1, max=200,
                                                help="How many to show.")] = 20,
             offset: Annotated[int, typer.Option("--offset", min=0,
                                                 help="Skip this many newer ones.")] = 0,
             as_json: JsonOpt = False) -> None:
    """List recent operations, newest first."""
    try:
        if state is not None and state not in STATES:
            raise ClientError(f"--state must be one of {', '.join(STATES)}", code="usage")
        page = Client().request("GET", "/api/operations", params={
            "instance": instance, "kind": kind, "state": state, "limit": limit,
            "offset": offset})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(page)
        return
    items: list[dict[str, Any]] = page["items"]
    if not items:
        console.print("No operations match." if page["total"] else "No operations yet.")
        return
    rows = table("ID", "INSTANCE", "KIND", "STATE", "STEP", "STARTED (UTC)", "TOOK")
    for op in items:
        subject = op["instance"] + (f" -> {op['target']}" if op.get("target") else "")
        rows.add_row(op["id"][:12], subject, op["kind"], op["state"], op["step"] or "-",
                     _when(op["started_at"]), _seconds(op["duration"]))
    console.print(rows)
    shown = page["offset"] + len(items)
    if shown < page["total"]:
        console.print(f"{shown} of {page['total']}; more with --offset {shown}")


@app.command("show")
def show_cmd(op_id: Annotated[str, typer.Argument(metavar="ID",
                                                  help="The operation's id (or its first "
                                                       "12 characters).")],
             as_json: JsonOpt = False) -> None:
    """Show one operation: its steps, how long each took, and its error."""
    try:
        client = Client()
        op = client.request("GET", f"/api/operations/{_full_id(client, op_id)}")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(op)
        return
    subject = op["instance"] + (f" -> {op['target']}" if op.get("target") else "")
    console.print(f"[bold]{escape(op['kind'])}[/] of {escape(subject)}: {op['state']} "
                  f"({_seconds(op['duration'])}, started {_when(op['started_at'])} UTC)")
    rows = table("STEP", "STARTED (UTC)", "TOOK")
    for step in op["steps"]:
        rows.add_row(step["name"], _when(step["started_at"]), _seconds(step["duration"]))
    if op["steps"]:
        console.print(rows)
    if op["error"]:
        console.print(f"[bold red]Error:[/] {escape(op['error'])}", highlight=False)


def _full_id(client: Client, given: str) -> str:
    """Accept the 12-character id `op list` prints; ids are 32 hex digits."""
    text = given.strip().lower()
    if not text or any(c not in "0123456789abcdef" for c in text) or len(text) > 32:
        raise ClientError(f"{given!r} is not an operation id (hex digits)", code="usage")
    if len(text) == 32:
        return text
    page = client.request("GET", "/api/operations", params={"limit": 200})
    found = [op["id"] for op in page["items"] if op["id"].startswith(text)]
    if len(found) != 1:
        raise ClientError(f"no single recent operation starts with {text!r}; give the full id",
                          code="not_found")
    return str(found[0])
