"""``stackhub version``: this StackHub's version, the server's, and whether a newer one exists."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from stackhub.cli.client import Client, ClientError
from stackhub.cli.output import console, emit_json, escape

app = typer.Typer(help="Show StackHub's version and whether a newer release is available.",
                  invoke_without_command=True, subcommand_metavar="")


@app.callback()
def version(as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
            = False,
            refresh: Annotated[bool, typer.Option(
                "--refresh", help="Read the release source now, not the server's 6-hour "
                                  "cache.")] = False) -> None:
    """Print the installed version; with a running server, its version and the newest release.

    The release source is the server's STACKHUB_RELEASE_SOURCE (a URL or a file).
    """
    from stackhub.version import installed

    server: dict[str, Any] | None = None
    note = None
    try:
        server = Client().request("GET", "/api/system/version",
                                  params={"refresh": "true"} if refresh else None)
    except ClientError as err:
        note = err.message
    if as_json:
        emit_json({"cli_version": installed(), "server": server, "error": note})
        return
    console.print(f"stackhub {escape(installed())} (this command)", highlight=False)
    if server is None:
        console.print(f"server: not asked ({escape(note or '')})", highlight=False)
        return
    console.print(f"server: StackHub {escape(server['version'])} (schema "
                  f"{server['schema_version']})", highlight=False)
    if server.get("previous_version"):
        console.print(f"upgraded from {escape(server['previous_version'])} at "
                      f"{escape(server.get('upgraded_at') or '?')}", highlight=False)
    if server.get("source") is None:
        console.print("newer releases: not checked (no STACKHUB_RELEASE_SOURCE)",
                      highlight=False)
    elif server.get("error"):
        console.print(f"newer releases: {escape(server['error'])}", highlight=False)
    elif server.get("update_available"):
        latest = server["latest"]
        console.print(f"[yellow]StackHub {escape(latest['version'])} is available[/]"
                      + (f": {escape(latest['url'])}" if latest.get("url") else ""),
                      highlight=False)
    else:
        console.print("StackHub is up to date", highlight=False)
