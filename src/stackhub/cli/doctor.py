"""``stackhub doctor``: ask the server to check the installation, or check locally when it is
down."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stackhub.cli.client import Client, ClientError
from stackhub.cli.output import console, emit_json, escape
from stackhub.config import Paths, default_data_dir

if TYPE_CHECKING:  # imported when run: the engine adapter costs start-up time elsewhere
    from stackhub.system.doctor import DoctorReport

app = typer.Typer(help="Check the installation and say how to fix each problem.",
                  invoke_without_command=True, subcommand_metavar="")
COLOURS = {"ok": "green", "warning": "yellow", "error": "red"}


@app.callback()
def doctor(as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
           = False,
           port: Annotated[int | None, typer.Option(
               help="The server's port (default: as the running server recorded it, else "
                    "$STACKHUB_PORT or 8420).")] = None,
           data_dir: Annotated[Path | None, typer.Option(
               "--data-dir", help="Data root (default: $STACKHUB_DATA_DIR).")] = None) -> None:
    """Check the engine, Compose, Caddy, restic, the data root, the port, DNS, the clock, the
    server and its service.

    Exits 1 when a check finds an error.
    """
    from stackhub.system.doctor import DoctorReport, local_probes, run_doctor, server_address

    paths = Paths((data_dir or default_data_dir()).resolve())
    url = server_address(paths, port)
    if port is None and os.environ.get("STACKHUB_URL"):
        url = os.environ["STACKHUB_URL"].rstrip("/")
    note = ""
    try:
        # a quick health probe first: a program on the port that never answers must not hang us
        if not local_probes().health(url):
            raise ClientError(f"no StackHub server answers at {url}")
        report = DoctorReport.model_validate(
            Client(url=url, data_dir=paths.root).request("GET", "/api/system/doctor"))
    except ClientError as err:
        if err.status:  # the server answers but refused (not an admin): check from here
            note = f"the server refused its report ({err.message}); checked locally"
        report = run_doctor(paths.root, url=url, in_server=False)
    if as_json:
        emit_json(report.model_dump(mode="json"))
    else:
        print_report(report, note)
    raise typer.Exit(1 if report.errors else 0)


def print_report(report: DoctorReport, note: str = "") -> None:
    """Print each check with its level and, for a problem, the command that fixes it."""
    from stackhub.system.doctor import lines

    for level, text in lines(report):
        console.print(f"[{COLOURS[level.value]}]{escape(text)}[/]", highlight=False,
                      soft_wrap=True)
    where = "by the server" if report.ran_on == "server" else "locally"
    console.print(f"{report.errors} errors, {report.warnings} warnings (checked {where})")
    if note:
        console.print(escape(note))
