"""``stackhub app ...``: plan, install, list, lifecycle, logs and remove instances."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from stackhub.cli import deps
from stackhub.cli.client import Client, ClientError
from stackhub.cli.humanize import ago
from stackhub.cli.operations import run_operation
from stackhub.cli.output import (
    console,
    emit_json,
    err_console,
    escape,
    fail,
    print_columns,
    table,
)

app = typer.Typer(help="Install and manage apps (instances).", no_args_is_help=True)
MANIFEST_FILE = "stackhub-app.yaml"  # as in catalog/manifest.py; not imported to keep the CLI fast
COMPOSE_FILE = "compose.yaml"
CATALOG_REF = re.compile(r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$")
COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
MAX_UPLOAD = 512 * 1024

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Parameter KEY=VALUE.")]
NameOpt = Annotated[str | None, typer.Option("--name", help="Instance name.")]


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_UPLOAD:
            raise ClientError(f"{path} is larger than {MAX_UPLOAD} bytes", code="too_large")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ClientError(f"{path} does not exist", code="usage") from err
    except UnicodeDecodeError as err:
        raise ClientError(f"{path} is not a UTF-8 text file", code="usage") from err
    except OSError as err:
        raise ClientError(f"cannot read {path}: {err.strerror}", code="usage") from err


def source_of(text: str) -> dict[str, Any]:
    """Turn SOURCE (store/app, a compose file, or an app folder) into an API source."""
    if not text.strip():
        raise ClientError("SOURCE is empty: give STORE/APP, a compose file or an app folder",
                          code="usage")
    path = Path(text)
    if path.is_dir():
        if (path / MANIFEST_FILE).is_file():
            return {"kind": "app", "manifest": _read(path / MANIFEST_FILE),
                    "compose": _read(path / COMPOSE_FILE)}
        for candidate in COMPOSE_NAMES:
            if (path / candidate).is_file():
                return {"kind": "compose", "compose": _read(path / candidate)}
        raise ClientError(f"{path} has neither {MANIFEST_FILE} nor a compose file", code="usage")
    if path.is_file():
        return {"kind": "compose", "compose": _read(path)}
    if CATALOG_REF.match(text) and not text.endswith((".yml", ".yaml")):
        return {"kind": "catalog", "ref": text}
    raise ClientError(f"{text!r} is neither an existing file or folder nor a catalog name "
                      "STORE/APP", code="usage")


def parse_sets(items: list[str] | None) -> dict[str, str]:
    """Parse repeated --set KEY=VALUE options."""
    values: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ClientError(f"--set expects KEY=VALUE, got {item!r}", code="usage")
        values[key] = value
    return values


def _request(source: str, name: str | None, sets: list[str] | None) -> dict[str, Any]:
    return {"source": source_of(source), "name": name, "values": parse_sets(sets)}


@app.command("plan")
def plan_cmd(source: str, output: Annotated[Path, typer.Option("--output", "-o",
             help="Folder to write compose.yaml and .env into.")],
             name: NameOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Render the project for SOURCE into a folder, without touching the engine."""
    try:
        plan = Client().request("POST", "/api/plans", json=_request(source, name, set_))
    except ClientError as err:
        fail(err, as_json=as_json)
    output.mkdir(parents=True, exist_ok=True)
    (output / "compose.yaml").write_text(plan["compose_file"])
    env = output / ".env"
    env.touch(mode=0o600)
    env.chmod(0o600)
    env.write_text(plan["env_file"])
    if as_json:
        emit_json({k: v for k, v in plan.items() if k not in ("values",)})
        return
    console.print(f"Plan for [bold]{plan['instance']}[/] ({plan['app']} {plan['version']}) "
                  f"written to {output}")
    _print_plan(plan)


def _print_plan(plan: dict[str, Any]) -> None:
    for port in plan["ports"]:
        console.print(f"  port {port['host_port']}/{port['protocol']} -> "
                      f"{port['service']}:{port['container_port']}")
    for url in plan["urls"]:
        console.print(f"  open {url}")
    for note in plan["notes"]:
        console.print(f"  note: {escape(note)}", style="yellow")
    if plan["risks"]:
        console.print(f"[bold yellow]Risky options[/] (digest {plan['digest']}):")
        for item in plan["risks"]:
            console.print(escape(f"  - [{item['severity']}] {item['service']}: {item['detail']}"))


@app.command("install")
def install_cmd(source: Annotated[str, typer.Argument(
                    help="STORE/APP, a compose file or an app folder; omit with "
                    "--docker-run.")] = "",
                name: NameOpt = None, set_: SetOpt = None,
                yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
                accept_risks: Annotated[str | None, typer.Option(
                    "--accept-risks", help="Accept the risky options with this digest.")] = None,
                docker_run: Annotated[str | None, typer.Option(
                    "--docker-run", help="Install the compose equivalent of this "
                    "'docker run ...' command (quoted); nothing is run on this machine.")] = None,
                with_deps: Annotated[bool, typer.Option(
                    "--with-deps", help="Install the apps it depends on first (Umbrel "
                    "dependencies), from the same store.")] = False,
                as_json: JsonOpt = False) -> None:
    """Install SOURCE (STORE/APP, a compose file or an app folder) and wait until it runs."""
    client = Client()
    try:
        if docker_run is not None:
            if source:
                raise ClientError("give either SOURCE or --docker-run, not both", code="usage")
            converted = client.request("POST", "/api/convert/docker-run",
                                       json={"command": docker_run})
            for note in converted["notes"]:
                err_console.print(f"note: {escape(note)}", style="yellow")
            request = {"source": {"kind": "compose", "compose": converted["compose"]},
                       "name": name or converted["name"], "values": parse_sets(set_)}
            source = converted["name"]
        else:
            request = _request(source, name, set_)
        interactive = not yes and sys.stdin.isatty() and not as_json
        if with_deps or interactive:
            deps.ensure(client, request, with_deps=with_deps, interactive=interactive,
                        quiet=as_json)
        if not interactive:  # no questions to ask: let the server plan once, inside install
            def announce(accepted: dict[str, Any]) -> None:
                what = escape(f"{accepted.get('app') or source} {accepted.get('version', '')}")
                console.print(f"Installing {what.strip()} as [bold]{accepted['instance']}[/]")

            _, op, instance = run_operation(
                client, lambda: _install_direct(client, request, accept_risks), quiet=as_json,
                announce=None if as_json else announce)
            _finish(op, instance, as_json)
            return
        plan = client.request("POST", "/api/plans", json=request)
        if not as_json:
            console.print(f"Installing [bold]{plan['app']}[/] {plan['version']} as "
                          f"[bold]{plan['instance']}[/]")
            _print_plan(plan)
        if plan["risks"] and accept_risks is None:
            if yes or not sys.stdin.isatty():
                raise ClientError(f"this app needs risky options; to accept them run again with "
                                  f"--accept-risks {plan['digest']}", code="risk_not_accepted",
                                  details={"digest": plan["digest"], "risks": plan["risks"]})
            if not typer.confirm("Accept these risky options?", default=False):
                raise typer.Exit(1)
            accept_risks = plan["digest"]
        elif not yes and sys.stdin.isatty() and not as_json and not typer.confirm(
                "Install?", default=True):
            raise typer.Exit(1)
        request["name"] = plan["instance"]
        body = {**request, "accept_risks": accept_risks}
        _, op, instance = run_operation(
            client, lambda: client.request("POST", "/api/instances", json=body), quiet=as_json)
    except ClientError as err:
        fail(err, as_json=as_json)
    _finish(op, instance, as_json)


def _install_direct(client: Client, request: dict[str, Any],
                    accept_risks: str | None) -> dict[str, Any]:
    """Start an install without a separate plan round trip; explain refused risks."""
    try:
        accepted: dict[str, Any] = client.request(
            "POST", "/api/instances", json={**request, "accept_risks": accept_risks})
    except ClientError as err:
        if err.code == "risk_not_accepted" and err.details.get("digest"):
            err.message = (f"{err.message}. To accept them, run again with --accept-risks "
                           f"{err.details['digest']}")
        raise
    return accepted


def _finish(op: dict[str, Any], instance: dict[str, Any] | None, as_json: bool) -> None:
    if as_json:
        emit_json({"operation": op, "instance": instance})
    elif op["state"] == "succeeded" and instance:
        console.print(f"[green]✔[/] {instance['name']} is {instance['status']}")
        for url in [instance["open_url"]] if instance.get("open_url") else instance["urls"]:
            console.print(f"  open {url}")
    else:
        err_console.print(f"[bold red]Error:[/] {op['kind']} of {op['instance']} {op['state']}: "
                          f"{escape(op.get('error') or 'no details')}", highlight=False)
    if op["state"] != "succeeded":
        raise typer.Exit(1)


@app.command("retry")
def retry_cmd(name: str, as_json: JsonOpt = False) -> None:
    """Retry a failed or interrupted install of NAME."""
    client = Client()
    try:
        _, op, instance = run_operation(
            client, lambda: client.request("POST", f"/api/instances/{name}/retry"), quiet=as_json)
    except ClientError as err:
        fail(err, as_json=as_json)
    _finish(op, instance, as_json)


@app.command("list")
def list_cmd(as_json: JsonOpt = False) -> None:
    """List instances with status, version, ports and URLs (warns on stderr if no engine)."""
    client = Client()
    try:
        instances = client.request("GET", "/api/instances")
        health = client.request("GET", "/api/health")
    except ClientError as err:
        fail(err, as_json=as_json)
    if not health.get("engine", True) and (health.get("engine_error") or any(
            i.get("status") == "unknown" for i in instances)):
        since = f" since {health['engine_since']}" if health.get("engine_since") else ""
        err_console.print(f"[bold yellow]Warning:[/] the Docker engine is unreachable{since}: "
                          "statuses are unknown until it answers again "
                          f"({escape(str(health.get('engine_error') or 'no answer'))})",
                          highlight=False)
    if as_json:
        emit_json(instances)
        return
    if not instances:
        console.print("No apps installed yet. Try: stackhub app install official/whoami")
        return
    rows: list[tuple[str, ...]] = []
    for item in instances:
        ports = ", ".join(f"{p['host_port']}->{p['service']}:{p['container_port']}"
                          for p in item["ports"])
        status = item["status"] + (f" ({item['status_reason']})" if item.get("status_reason")
                                   else "")
        rows.append((item["name"], item["app"], status, item["version"], ports,
                     item.get("open_url") or "-", ago(item.get("last_backup_at"))))
    # plain columns: 250 instances in a rich table cost 0.3 s of CPU (issue 18, part 5)
    print_columns(("NAME", "APP", "STATUS", "VERSION", "PORTS", "URL", "LAST BACKUP"), rows)


def _lifecycle(verb: str, name: str, as_json: bool) -> None:
    try:
        instance = Client().request("POST", f"/api/instances/{name}/{verb}")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(instance)
    else:
        console.print(f"{instance['name']} is {instance['status']}")


@app.command("start")
def start_cmd(name: str, as_json: JsonOpt = False) -> None:
    """Start an instance."""
    _lifecycle("start", name, as_json)


@app.command("stop")
def stop_cmd(name: str, as_json: JsonOpt = False) -> None:
    """Stop an instance."""
    _lifecycle("stop", name, as_json)


@app.command("restart")
def restart_cmd(name: str, as_json: JsonOpt = False) -> None:
    """Restart an instance."""
    _lifecycle("restart", name, as_json)


@app.command("logs")
def logs_cmd(name: str, follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
             tail: Annotated[int, typer.Option("--tail", "-n")] = 200) -> None:
    """Print an instance's logs (optionally following)."""
    try:
        for line in Client().stream_lines(f"/api/instances/{name}/logs",
                                          {"tail": tail, "follow": follow}):
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    except ClientError as err:
        fail(err)
    except KeyboardInterrupt:
        pass


@app.command("remove")
def remove_cmd(name: str, purge: Annotated[bool, typer.Option(
               "--purge", help="Also delete this instance's data folders and volumes.")] = False,
               yes: Annotated[bool, typer.Option("--yes", "-y")] = False,
               as_json: JsonOpt = False) -> None:
    """Remove an instance; its data is kept unless --purge."""
    client = Client()
    try:
        client.request("GET", f"/api/instances/{name}")
        if purge and not yes and not sys.stdin.isatty():
            raise ClientError("--purge deletes data: add --yes to confirm when not running in a "
                              "terminal", code="usage")
        if not yes and sys.stdin.isatty():
            what = "and DELETE its data" if purge else "(data is kept)"
            if not typer.confirm(f"Remove {name} {what}?", default=False):
                raise typer.Exit(1)
        _, op, _ = run_operation(client, lambda: client.request(
            "DELETE", f"/api/instances/{name}", params={"purge": purge}), quiet=as_json)
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json({"operation": op})
    elif op["state"] == "succeeded":
        console.print(f"[green]✔[/] removed {name}" + ("" if purge else " (data kept)"))
    else:
        reason = escape(str(op.get("error")))
        err_console.print(f"[bold red]Error:[/] removing {name} failed: {reason}")
    if op["state"] != "succeeded":
        raise typer.Exit(1)


def _size(size: int) -> str:
    """Show bytes the way people read them (1.5 MB)."""
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


@app.command("kept")
def kept_cmd(as_json: JsonOpt = False) -> None:
    """List the data removed instances left (install under the same name to reuse it)."""
    try:
        kept = Client().request("GET", "/api/kept-data")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(kept)
        return
    if not kept:
        console.print("No kept data.")
        return
    shown = table("NAME", "APP", "SIZE", "VOLUMES", "REMOVED")
    for item in kept:
        size = _size(item["size"]) + ("" if item["size_complete"] else "+")
        shown.add_row(item["name"], item["app"] or "-", size, str(len(item["volumes"])),
                      (item["removed_at"] or item["modified_at"] or "-")[:16])
    console.print(shown)


@app.command("purge-data")
def purge_data_cmd(name: str, yes: Annotated[bool, typer.Option("--yes", "-y")] = False,
                   as_json: JsonOpt = False) -> None:
    """Delete for good the data a removed instance NAME left (folder and volumes)."""
    client = Client()
    try:
        if not yes:
            if not sys.stdin.isatty():
                raise ClientError("purge-data deletes data: add --yes to confirm when not "
                                  "running in a terminal", code="usage")
            if not typer.confirm(f"Delete the kept data of {name} for good?", default=False):
                raise typer.Exit(1)
        purged = client.request("DELETE", f"/api/kept-data/{name}")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(purged)
    else:
        console.print(f"[green]✔[/] deleted the kept data of {name} "
                      f"({_size(purged['size'])}, {len(purged['volumes'])} volume(s))")


@app.command("exec")
def exec_cmd(name: str,
             command: Annotated[list[str] | None, typer.Argument(
                 help="The command after --; default: a shell (bash, else sh).")] = None,
             service: Annotated[str | None, typer.Option(
                 "--service", "-s", help="The compose service; default: the main one.")] = None,
             ) -> None:
    """Run a command, or a shell, in an instance's container (a TTY when on a terminal)."""
    from stackhub.cli.terminal import run_exec

    try:
        code = run_exec(name, service, command)
    except ClientError as err:
        fail(err)
    except KeyboardInterrupt:  # the socket closed on the way out: the process is ended
        code = 130
    raise typer.Exit(code)


from stackhub.cli.updates import register as _register_updates  # noqa: E402

_register_updates(app)  # settings, set, revisions, check-updates, update, rollback

from stackhub.cli.domains import protect_cmd as _protect  # noqa: E402

app.command("protect")(_protect)  # StackHub's sign-in in front of the app (docs/cli.md)

from stackhub.cli.top import metrics_cmd as _metrics  # noqa: E402

app.command("metrics")(_metrics)  # the instance's metrics history (docs/cli.md)
