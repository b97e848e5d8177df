"""``stackhub app clone NAME NEW``: a copy of an instance with its data (registered into the
``app`` group by cli/updates.py)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from stackhub.cli.client import Client, ClientError
from stackhub.cli.operations import run_operation
from stackhub.cli.output import console, emit_json, err_console, escape, fail


def _ports(ports: list[dict[str, Any]]) -> str:
    return ", ".join(f"{p['host_port']}->{p['container_port']}/{p['protocol']}"
                     for p in ports) or "none"


def clone_cmd(name: str, new: Annotated[str, typer.Argument(help="The copy's name")],
              yes: Annotated[bool, typer.Option("--yes", "-y", help="Clone without asking "
                                                "(NAME stops while it is copied).")] = False,
              accept_risks: Annotated[str | None, typer.Option(
                  "--accept-risks", help="Accept risky options the copy has and NAME has "
                  "not, by the digest the refusal shows.")] = None,
              as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")
                                 ] = False) -> None:
    """Clone NAME as NEW: a fresh snapshot restored as a new instance (new ports, same
    secrets and values, no custom domain)."""
    if not yes:
        if as_json or not sys.stdin.isatty():
            fail(ClientError("cloning stops NAME while its data is copied: run again with "
                             "--yes", code="usage"), as_json=as_json)
        if not typer.confirm(f"Clone {name} as {new}? {name} stops while it is copied.",
                             default=False):
            raise typer.Exit(1)
    client = Client()
    body: dict[str, Any] = {"name": new}
    if accept_risks:
        body["accept_risks"] = accept_risks

    def announce(accepted: dict[str, Any]) -> None:
        if not as_json:
            err_console.print(f"Cloning {name} as {new}; its host ports: "
                              f"{_ports(accepted.get('ports') or [])}", highlight=False)

    try:
        accepted, op, instance = run_operation(client, lambda: client.request(
            "POST", f"/api/instances/{name}/clone", json=body), quiet=as_json,
            announce=announce)
    except ClientError as err:
        if err.code == "risk_not_accepted" and err.details.get("digest"):
            err.message += f"; to accept them, run again with --accept-risks " \
                           f"{err.details['digest']}"
        fail(err, as_json=as_json)
    if as_json:
        emit_json({"operation": op, "instance": new, "source": name,
                   "ports": accepted.get("ports") or [], "status": (instance or {}).get(
                       "status")})
    elif op["state"] == "succeeded":
        console.print(f"[green]✔[/] {name} cloned as {new} (ports: "
                      f"{_ports(accepted.get('ports') or [])})", highlight=False)
    else:
        err_console.print(f"[bold red]Error:[/] the clone of {name} {op['state']}: "
                          f"{escape(op.get('error') or 'no details')}", highlight=False)
    if op["state"] != "succeeded":
        raise typer.Exit(1)
