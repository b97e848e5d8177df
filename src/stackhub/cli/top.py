"""``stackhub top`` (a live table of running instances) and ``stackhub app metrics NAME``."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stackhub.cli.client import Client, ClientError
from stackhub.cli.output import console, emit_json, escape, fail, table

if TYPE_CHECKING:
    from rich.table import Table

app = typer.Typer(help="A live table of running instances: CPU, memory, network, block I/O.",
                  invoke_without_command=True, subcommand_metavar="")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one snapshot as JSON and exit.")]
SORTS = ("cpu", "memory", "disk", "name")
RANGES = ("1h", "24h", "7d", "90d")


def size(value: float | None) -> str:
    """Format bytes for people (binary units)."""
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return str(value)


def rate(value: float | None) -> str:
    """Format bytes per second."""
    return "-" if value is None else f"{size(value)}/s"


def percent(value: float | None) -> str:
    """Format a percentage."""
    return "-" if value is None else f"{value:.1f}%"


def render(snapshot: dict[str, Any]) -> Table:
    """Build the table of one snapshot (host line first for admins)."""
    out = table("Instance", "CPU", "Memory", "Net ↓", "Net ↑", "Disk read", "Disk write",
                "Disk use")
    host = snapshot.get("host")
    if host:
        memory = f"{size(host['memory'])} / {size(host['memory_total'])}"
        out.add_row("[bold]host[/]", f"{percent(host['cpu'])} of {host['cpus']}", memory,
                    rate(host["rx"]), rate(host["tx"]), "", "",
                    f"{size(host['disk'])} / {size(host['disk_total'])}")
    for row in snapshot["instances"]:
        out.add_row(escape(row["name"]), percent(row["cpu"]), size(row["memory"]),
                    rate(row["rx"]), rate(row["tx"]), rate(row["read"]), rate(row["write"]),
                    size(row["disk"]))
    if not snapshot["instances"]:
        out.caption = ("the metrics history is off (STACKHUB_METRICS_HISTORY=0)"
                       if not snapshot["enabled"] else "no running instance yet")
    return out


@app.callback()
def top(as_json: JsonOpt = False,
        sort: Annotated[str, typer.Option(help="Order by cpu, memory, disk or name.")] = "cpu",
        refresh: Annotated[float, typer.Option(help="Seconds between refreshes.", min=1.0)]
        = 5.0) -> None:
    """Show what runs now, busiest first, refreshed until Ctrl-C (`--json`: one snapshot)."""
    if sort not in SORTS:
        fail(ClientError(f"--sort must be one of {', '.join(SORTS)}", code="usage"),
             as_json=as_json)
    client = Client()
    try:
        snapshot = client.request("GET", "/api/metrics/top", params={"sort": sort})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json or not sys.stdout.isatty():
        if as_json:
            emit_json(snapshot)
        else:
            console.print(render(snapshot))
        return
    from rich.live import Live

    try:
        with Live(render(snapshot), console=console.rich, auto_refresh=False) as live:
            while True:
                time.sleep(refresh)
                try:
                    snapshot = client.request("GET", "/api/metrics/top", params={"sort": sort})
                except ClientError as err:
                    fail(err)
                live.update(render(snapshot), refresh=True)
    except KeyboardInterrupt:
        return


def metrics_cmd(name: str,
                range_name: Annotated[str, typer.Option(
                    "--range", help="1h, 24h, 7d or 90d.")] = "1h",
                as_json: JsonOpt = False) -> None:
    """Show an instance's metrics history: CPU and memory (min, mean, max) per step."""
    if range_name not in RANGES:
        fail(ClientError(f"--range must be one of {', '.join(RANGES)}", code="usage"),
             as_json=as_json)
    try:
        found: dict[str, Any] = Client().request("GET", "/api/metrics/history", params={
            "scope": "instance", "name": name, "range": range_name})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(found)
        return
    series = found["series"]
    out = table("Time", "CPU mean", "CPU max", "Memory mean", "Memory max", "Net ↓", "Net ↑")
    for i, at in enumerate(found["at"]):
        stamp = time.strftime("%m-%d %H:%M:%S", time.localtime(at))
        out.add_row(stamp, percent(series["cpu"]["mean"][i]), percent(series["cpu"]["max"][i]),
                    size(series["memory"]["mean"][i]), size(series["memory"]["max"][i]),
                    rate(series["rx"]["mean"][i]), rate(series["tx"]["mean"][i]))
    out.caption = f"{name}, last {range_name}, one row per {found['step']} s"
    console.print(out)
