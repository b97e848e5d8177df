"""``stackhub app settings|set|revisions|check-updates|updates|update|rollback``: settings after
install and safe updates (registered into the ``app`` group by cli/apps.py)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from stackhub.cli.client import Client, ClientError
from stackhub.cli.operations import run_operation
from stackhub.cli.output import call_or_fail, console, emit_json, err_console, escape, fail, table

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")]


def _sets(items: list[str] | None) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ClientError(f"--set expects KEY=VALUE, got {item!r}", code="usage")
        values[key] = value
    return values


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise ClientError("add --yes to apply when not running in a terminal", code="usage")
    if not typer.confirm(question, default=False):
        raise typer.Exit(1)


def _end(op: dict[str, Any], as_json: bool, done: str, extra: dict[str, Any] | None = None
         ) -> None:
    if as_json:
        emit_json({"operation": op, **(extra or {})})
    elif op["state"] == "succeeded":
        console.print(f"[green]✔[/] {done}")
    else:
        err_console.print(f"[bold red]Error:[/] {op['kind']} of {op['instance']} {op['state']}: "
                          f"{escape(op.get('error') or 'no details')}", highlight=False)
    if op["state"] != "succeeded":
        raise typer.Exit(1)


def settings_cmd(name: str, as_json: JsonOpt = False) -> None:
    """Show NAME's settings: each parameter's value (secrets hidden), read-only ones marked."""
    data = call_or_fail(Client(), "GET", f"/api/instances/{name}/settings", as_json=as_json)
    if as_json:
        emit_json(data)
        return
    rows = table("PARAMETER", "TYPE", "VALUE", "NOTE")
    for item in data["parameters"]:
        note = "read-only: " + item["reason"] if not item["editable"] else ""
        rows.add_row(item["name"], item["type"], item["value"], note)
    console.print(f"{data['instance']} ({data['app']} {data['version']}), revision "
                  f"{data['revision'] or 1}")
    console.print(rows)


def _print_preview(preview: dict[str, Any]) -> None:
    if not preview["changes"] and not preview["recreate"]:
        console.print("Nothing changes.")
        return
    for change in preview["changes"]:
        console.print(f"  {change['name']}: {escape(change['old'])} -> {escape(change['new'])}")
    if preview["diff"]:
        console.print(escape(preview["diff"].rstrip()), highlight=False)
    console.print("Recreated: " + (", ".join(preview["recreate"]) or "none") +
                  "; left running: " + (", ".join(preview["unchanged"]) or "none"))
    for risk in preview.get("risks") or []:
        console.print(f"  [yellow]risk[/] {risk['service']}: {escape(risk['detail'])}")


def set_cmd(name: str,
            set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE")] = None,
            revision: Annotated[int | None, typer.Option(
                "--revision", help="Go back to this revision (see `app revisions`).")] = None,
            yes: YesOpt = False, as_json: JsonOpt = False) -> None:
    """Change NAME's settings: shows the diff and the services to recreate, then applies."""
    client = Client()
    try:
        body: dict[str, Any] = {"values": _sets(set_), "revision": revision}
        if not body["values"] and revision is None:
            raise ClientError("give --set KEY=VALUE (repeatable) or --revision N", code="usage")
        preview = client.request("POST", f"/api/instances/{name}/settings/preview", json=body)
        if not as_json:
            _print_preview(preview)
        _confirm(f"Apply these settings to {name}?", yes or as_json)
        if preview["needs_consent"]:
            body["accept_risks"] = preview["digest"]
        _, op, _ = run_operation(client, lambda: client.request(
            "PUT", f"/api/instances/{name}/settings", json=body), quiet=as_json)
    except ClientError as err:
        fail(err, as_json=as_json)
    _end(op, as_json, f"{name}: settings applied (recreated: "
         f"{', '.join(preview['recreate']) or 'none'})", {"preview": preview})


def revisions_cmd(name: str, as_json: JsonOpt = False) -> None:
    """List NAME's settings revisions, newest first."""
    try:
        items = Client().request("GET", f"/api/instances/{name}/revisions")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(items)
        return
    rows = table("REV", "WHEN", "REASON", "VERSION", "SNAPSHOT")
    for item in items:
        mark = " *" if item["current"] else ""
        rows.add_row(f"{item['number']}{mark}", item["created_at"], item["reason"],
                     item["version"], (item.get("snapshot") or "")[:8])
    console.print(rows)


def _notes(item: dict[str, Any]) -> str | None:
    """An update's release notes in English (else the first language given)."""
    notes = item.get("release_notes") or {}
    return notes.get("en") or next(iter(notes.values()), None)


def _print_updates(items: list[dict[str, Any]]) -> None:
    rows = table("NAME", "VERSION", "UPDATE", "NOTE")
    for item in items:
        what = (f"{item['update_kind']}: {item['latest_version']}" if item["update_available"]
                else "up to date")
        rows.add_row(item["instance"], item["current_version"], what,
                     item.get("blocked") or "; ".join(item.get("errors") or []))
    console.print(rows)
    for item in items:
        notes = _notes(item) if item["update_available"] else None
        if notes:
            console.print(f"\n[bold]{escape(item['instance'])} -> "
                          f"{escape(str(item['latest_version']))}: release notes[/]")
            console.print(escape(notes), highlight=False)


def check_updates_cmd(as_json: JsonOpt = False) -> None:
    """Look for new versions in the stores and new image digests behind the same tags."""
    try:
        items = Client().request("POST", "/api/updates/check")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(items)
        return
    _print_updates(items)


def updates_cmd(as_json: JsonOpt = False) -> None:
    """List the updates the last check found (with release notes); no registry is asked."""
    try:
        items = Client().request("GET", "/api/updates")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(items)
        return
    if not items:
        console.print("No updates known; run `stackhub app check-updates` to look again.")
        return
    _print_updates(items)


def update_cmd(name: str, yes: YesOpt = False, as_json: JsonOpt = False,
               force: Annotated[bool, typer.Option(
                   "--force", help="Pull and apply again even if nothing newer is known.")] = False,
               allow_database_major: Annotated[bool, typer.Option(
                   "--allow-database-major",
                   help="Accept a database image's major version change.")] = False,
               stability: Annotated[float | None, typer.Option(
                   "--stability", help="Seconds of the stability window (default 60).")] = None
               ) -> None:
    """Update NAME safely: snapshot first, rolled back automatically on any failure."""
    client = Client()
    info: dict[str, Any] = {}
    shown: list[bool] = []

    def preview(_accepted: object = None) -> None:
        if info and not as_json and not shown:
            shown.append(True)
            _preview(name, info)

    try:
        info.update(client.request("GET", f"/api/instances/{name}/update"))
        if not (yes or as_json):  # read before the question
            preview()
        _confirm(f"Update {name}? It stops while a snapshot is taken.", yes or as_json)
        body = {"force": force, "allow_database_major": allow_database_major,
                "stability": stability}
        # with --yes the preview prints once the update has started, so rich loads and
        # renders while the server works instead of before the request (same output, order)
        _, op, _ = run_operation(client, lambda: client.request(
            "POST", f"/api/instances/{name}/update", json=body), quiet=as_json,
            announce=preview)
    except ClientError as err:
        preview()  # a refused update still shows what it was about
        fail(err, as_json=as_json)
    _end(op, as_json, f"{name} updated", {"update": info})


def _preview(name: str, info: dict[str, Any]) -> None:
    """Print what an update will do: versions, a blocking note, the release notes."""
    what = (f"{info['update_kind']} update to {info['latest_version']}"
            if info["update_available"] else "re-apply (nothing newer known)")
    console.print(f"{name} {info['current_version']}: {what}")
    if info.get("blocked"):
        err_console.print(f"[bold yellow]Note:[/] {escape(info['blocked'])}")
    if info["update_available"] and _notes(info):
        console.print("[bold]Release notes[/]")
        console.print(escape(_notes(info) or ""), highlight=False)


def rollback_cmd(name: str, yes: YesOpt = False, as_json: JsonOpt = False) -> None:
    """Return NAME to the version before its last update (definition and data)."""
    client = Client()
    try:
        if not as_json:
            err_console.print("[bold yellow]Warning:[/] the app's data goes back to the snapshot "
                              "taken before the last update: anything written since is lost.")
        _confirm(f"Roll {name} back?", yes or as_json)
        _, op, _ = run_operation(client, lambda: client.request(
            "POST", f"/api/instances/{name}/rollback"), quiet=as_json)
    except ClientError as err:
        fail(err, as_json=as_json)
    _end(op, as_json, f"{name} rolled back")


def register(app: typer.Typer) -> None:
    """Add these commands to the ``app`` group."""
    app.command("settings")(settings_cmd)
    app.command("set")(set_cmd)
    app.command("revisions")(revisions_cmd)
    app.command("check-updates")(check_updates_cmd)
    app.command("updates")(updates_cmd)
    app.command("update")(update_cmd)
    app.command("rollback")(rollback_cmd)
    from stackhub.cli.auto_updates import auto_update_cmd, replaced_images_cmd
    from stackhub.cli.clone import clone_cmd

    app.command("clone")(clone_cmd)
    app.command("auto-update")(auto_update_cmd)
    app.command("replaced-images")(replaced_images_cmd)
