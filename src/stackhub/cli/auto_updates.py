"""``stackhub app auto-update NAME`` and ``stackhub app replaced-images``: automatic updates
per instance and the images updates replaced (registered into the ``app`` group by
cli/updates.py)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from stackhub.cli.client import Client, ClientError
from stackhub.cli.operations import run_operation
from stackhub.cli.output import console, emit_json, err_console, escape, fail, table

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _show(data: dict[str, Any]) -> None:
    state = "on" if data["enabled"] else "off"
    console.print(f"{data['instance']}: automatic updates {state}; window {data['window']} "
                  f"(server time); kind {data['kind']}", highlight=False)
    if data.get("next_window"):
        console.print(f"  next window: {data['next_window']}", highlight=False)
    if data.get("last_result"):
        console.print(f"  last: {data['last_at']} {data['last_result']}: "
                      f"{escape(data.get('last_message') or '')}", highlight=False)


def auto_update_cmd(
        name: str,
        on: Annotated[bool | None, typer.Option("--on/--off", help="Turn automatic updates on "
                                                "or off (off by default).")] = None,
        window: Annotated[str | None, typer.Option(
            "--window", help="When updates may start, server time: 'sun 04:00', "
            "'daily 03:00-05:00', 'sat,sun 02:30-04:00' (2 hours without an end).")] = None,
        kind: Annotated[str | None, typer.Option(
            "--kind", help="digest (default): new images of the same version only; version: "
            "new store versions too. Database major changes are never applied.")] = None,
        now: Annotated[bool, typer.Option("--now", help="Check and apply now, whatever the "
                                          "window.")] = False,
        as_json: JsonOpt = False) -> None:
    """Show or set NAME's automatic updates; --now runs one (followed to its end)."""
    client = Client()
    try:
        if kind is not None and kind not in ("digest", "version"):
            raise ClientError("--kind is digest or version", code="usage")
        if on is not None or window is not None or kind is not None:
            current = client.request("GET", f"/api/instances/{name}/auto-update")
            body = {"enabled": current["enabled"] if on is None else on, "window": window,
                    "kind": kind}
            data = client.request("PUT", f"/api/instances/{name}/auto-update", json=body)
        else:
            data = client.request("GET", f"/api/instances/{name}/auto-update")
        if not now:
            if as_json:
                emit_json(data)
            else:
                _show(data)
            return
        _, op, _ = run_operation(client, lambda: client.request(
            "POST", f"/api/instances/{name}/auto-update/run"), quiet=as_json)
        data = client.request("GET", f"/api/instances/{name}/auto-update")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json({"operation": op, "auto_update": data})
    elif op["state"] == "succeeded":
        console.print(f"[green]✔[/] {name}: {data.get('last_result')}: "
                      f"{escape(data.get('last_message') or '')}", highlight=False)
    else:
        err_console.print(f"[bold red]Error:[/] {name}: {data.get('last_result') or 'failed'}:"
                          f" {escape(op.get('error') or 'no details')}", highlight=False)
    if op["state"] != "succeeded":
        raise typer.Exit(1)


def replaced_images_cmd(prune: Annotated[bool, typer.Option(
        "--prune", help="Remove those older than 7 days that no container uses, now.")] = False,
        as_json: JsonOpt = False) -> None:
    """List the images updates replaced (kept 7 days for rollbacks, then pruned)."""
    client = Client()
    try:
        if prune:
            done = client.request("POST", "/api/updates/prune")
            if not as_json:
                console.print(f"Pruned {len(done)} image(s).")
        items = client.request("GET", "/api/updates/replaced-images")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json({"pruned": done, "kept": items} if prune else items)
        return
    rows = table("INSTANCE", "IMAGE", "ID", "REPLACED", "PRUNE AFTER")
    for item in items:
        rows.add_row(item["instance"], item["ref"], item["image_id"][7:19],
                     item["replaced_at"], item["prune_after"])
    console.print(rows)
