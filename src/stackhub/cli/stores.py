"""``stackhub store ...``: add, list, sync and remove app stores."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from stackhub.cli.client import Client, ClientError
from stackhub.cli.output import console, emit_json, err_console, fail, table

app = typer.Typer(help="Manage app stores (sources of catalog apps).", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Re-read even if unchanged.")]


def _source(text: str) -> str:
    """Turn an existing relative path into an absolute one; leave URLs alone."""
    if "://" not in text and Path(text).exists():
        return str(Path(text).resolve())
    return text


def _summary(result: dict[str, Any]) -> str:
    if result.get("error"):
        return f"[red]failed[/]: {result['error']}"
    state = "updated" if result["changed"] else "unchanged"
    revision = str(result.get("revision") or "")[-12:]
    text = f"{result['app_count']} apps, {state} ({revision}, {result['seconds']:.1f} s)"
    if result["app_errors"]:
        text += f", [yellow]{len(result['app_errors'])} unreadable[/]"
    if result["updates"]:
        text += f"; updates for {', '.join(result['updates'])}"
    return text


@app.command("add")
def add_cmd(name: str, source: Annotated[str, typer.Argument(
                help="An https git URL, an https .zip/.tar.gz URL, or (with --local) a path.")],
            branch: Annotated[str | None, typer.Option("--branch", "-b",
                                                       help="Git branch.")] = None,
            local: Annotated[bool, typer.Option(
                "--local", help="Trust a local source: paths, file:// and http:// URLs, "
                "internal addresses.")] = False,
            kind: Annotated[str | None, typer.Option(
                help="git, archive or local (guessed from SOURCE).")] = None,
            sync: Annotated[bool, typer.Option(help="Sync right away.")] = True,
            max_size: Annotated[int | None, typer.Option(
                "--max-size", min=1, max=4096, help="The most a sync may keep, in MiB "
                "(default 300).")] = None,
            as_json: JsonOpt = False) -> None:
    """Add a store named NAME and sync it."""
    body = {"name": name, "source": _source(source), "branch": branch, "kind": kind,
            "local": local, "sync": sync, "max_size_mb": max_size}
    try:
        with console.status(f"Adding store {name}..."):
            store = Client().request("POST", "/api/stores", json=body)
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(store)
    elif store["last_error"]:
        err_console.print(f"[yellow]Added store {name}, but its first sync failed:[/] "
                          f"{store['last_error']}", highlight=False)
    else:
        console.print(f"Added store [bold]{name}[/] ({store['kind']}): {store['app_count']} apps"
                      + (f", {len(store['app_errors'])} unreadable" if store["app_errors"]
                         else ""), highlight=False)
    if store["last_error"]:
        raise SystemExit(1)


@app.command("list")
def list_cmd(as_json: JsonOpt = False) -> None:
    """List stores in precedence order with their last sync."""
    try:
        stores = Client().request("GET", "/api/stores")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(stores)
        return
    rows = table("NAME", "KIND", "SOURCE", "APPS", "LAST SYNC", "STATUS")
    rows.columns[0].no_wrap = True
    for item in stores:
        source = item["source"] + (f" ({item['branch']})" if item["branch"] else "")
        status = "[red]" + item["last_error"][:80] + "[/]" if item["last_error"] else "ok"
        if item["last_sync"] is None and not item["last_error"]:
            status = "never synced"
        kind = item["kind"] + (" (local)" if item["local"] and item["kind"] != "local" else "")
        rows.add_row(item["name"], kind,
                      source, str(item["app_count"]), (item["last_sync"] or "-")[:19], status)
    console.print(rows)


@app.command("sync")
def sync_cmd(name: Annotated[str | None, typer.Argument(help="One store (default: all).")]
             = None, force: ForceOpt = False, as_json: JsonOpt = False) -> None:
    """Sync one store or all of them now."""
    path = f"/api/stores/{name}/sync" if name else "/api/stores/sync"
    try:
        with console.status(f"Syncing {'store ' + name if name else 'all stores'}..."):
            answer = Client().request("POST", path, params={"force": force})
    except ClientError as err:
        fail(err, as_json=as_json)
    results = [answer] if name else answer
    if as_json:
        emit_json(answer)
    else:
        for result in results:
            console.print(f"[bold]{result['store']}[/]: {_summary(result)}", highlight=False)
            for problem in result["app_errors"][:10]:
                console.print(f"  - {problem}", style="yellow", highlight=False)
    if any(r.get("error") for r in results):
        raise SystemExit(1)


@app.command("remove")
def remove_cmd(name: str, as_json: JsonOpt = False) -> None:
    """Remove a store; installed instances from it keep running."""
    try:
        Client().request("DELETE", f"/api/stores/{name}")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json({"removed": name})
    else:
        console.print(f"Removed store {name}")
