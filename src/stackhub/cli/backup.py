"""``stackhub backup ...``: repositories, backups and restores of instances (admins)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from stackhub.cli.client import Client, ClientError
from stackhub.cli.operations import run_operation
from stackhub.cli.output import call_or_fail, console, emit_json, err_console, escape, fail, table
from stackhub.cli.recovery import restore_system_cmd

app = typer.Typer(help="Back up and restore instances with restic (encrypted repositories).",
                  no_args_is_help=True)
repo_app = typer.Typer(help="Manage backup repositories (local, sftp:, s3:, rest:).",
                       no_args_is_help=True)
app.add_typer(repo_app, name="repo")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
RepoOpt = Annotated[str | None, typer.Option("--repo", help="Repository name (default: the "
                                             "default repository).")]


def _size(value: int | None) -> str:
    """Say a byte count briefly."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _finish(op: dict[str, Any], as_json: bool, done: str) -> None:
    """Print how an operation ended; exit non-zero unless it succeeded."""
    if as_json:
        emit_json({"operation": op})
    elif op["state"] == "succeeded":
        console.print(f"[green]✔[/] {done}")
    else:
        err_console.print(f"[bold red]Error:[/] {op['kind']} of {op['instance']} {op['state']}: "
                          f"{escape(op.get('error') or 'no details')}", highlight=False)
    if op["state"] != "succeeded":
        raise SystemExit(1)


@app.command("create")
def create_cmd(name: Annotated[str, typer.Argument(help="The instance to back up.")],
               repo: RepoOpt = None, as_json: JsonOpt = False) -> None:
    """Back up NAME (stopped for the copy, started again) and wait for it to finish.

    An app that declares a hot backup is not stopped: its dump command runs in its service.
    """
    client = Client()
    body = {"repository": repo} if repo else None
    try:
        _, op, _ = run_operation(
            client, lambda: client.request("POST", f"/api/backups/instances/{name}", json=body),
            quiet=as_json)
    except ClientError as err:
        fail(err, as_json=as_json)
    _finish(op, as_json, f"{name} is backed up")


@app.command("list")
def list_cmd(name: Annotated[str | None, typer.Argument(help="Only backups of this "
                                                        "instance.")] = None,
             repo: RepoOpt = None, as_json: JsonOpt = False) -> None:
    """List backups in a repository, newest first."""
    try:
        items = Client().request("GET", "/api/backups",
                                 params={"instance": name, "repository": repo})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(items)
        return
    if not items:
        console.print("No backups yet.")
        return
    rows = table("ID", "INSTANCE", "APP", "VERSION", "KIND", "TIME (UTC)", "SIZE", "REPOSITORY")
    for item in items:
        rows.add_row(item["short_id"], item["instance"], item["app"], item["version"],
                     item["kind"], item["time"][:19].replace("T", " "), _size(item["size"]),
                     item["repository"])
    console.print(rows)


@app.command("restore")
def restore_cmd(name: Annotated[str, typer.Argument(help="The instance to restore (it may "
                                                    "no longer exist).")],
                snapshot: Annotated[str, typer.Argument(help="Snapshot id (from `backup "
                                                        "list`) or `latest`.")],
                repo: RepoOpt = None,
                as_name: Annotated[str | None, typer.Option(
                    "--as", help="Restore as a new instance of this name beside NAME (new "
                    "ports, same secrets); NAME is left as it is.")] = None,
                accept_risks: Annotated[str | None, typer.Option(
                    "--accept-risks", help="Accept the risky options the backup has and the "
                    "instance did not, by the digest the refusal shows.")] = None,
                yes: Annotated[bool, typer.Option("--yes", help="Replace the instance's "
                                                  "current data without asking.")] = False,
                as_json: JsonOpt = False) -> None:
    """Restore NAME from a backup: its data now is replaced (kept aside until success).

    With --as NEW, the backup becomes a new instance NEW and NAME is not touched.
    """
    if not yes and as_name is None:
        if as_json or not sys.stdin.isatty():
            fail(ClientError("restoring replaces the instance's current data: run again with "
                             "--yes", code="usage"), as_json=as_json)
        if not typer.confirm(f"Replace {name}'s current data with backup {snapshot}?",
                             default=False):
            raise typer.Exit(1)
    client = Client()
    body: dict[str, Any] = {"repository": repo, "as_name": as_name, "accept_risks": accept_risks}

    def begin() -> dict[str, Any]:
        try:
            accepted: dict[str, Any] = client.request(
                "POST", f"/api/backups/instances/{name}/snapshots/{snapshot}/restore",
                json={k: v for k, v in body.items() if v is not None})
        except ClientError as err:
            if err.code == "risk_not_accepted" and err.details.get("digest"):
                risks = "; ".join(f"[{r['severity']}] {r['service']}: {r['detail']}"
                                  for r in err.details.get("risks", []))
                err.message = (f"{err.message}: {risks}. To accept them, run again with "
                               f"--accept-risks {err.details['digest']}")
            raise
        return accepted

    try:
        _, op, _ = run_operation(client, begin, quiet=as_json)
    except ClientError as err:
        fail(err, as_json=as_json)
    _finish(op, as_json, f"{name} is restored from {snapshot} as {as_name} and started"
            if as_name else f"{name} is restored from {snapshot} and started")


KeepOpt = Annotated[int | None, typer.Option(min=0, max=1000)]


def _keeps(**counts: int | None) -> dict[str, int]:
    return {f"keep_{k}": v for k, v in counts.items() if v is not None}


DefaultOpt = Annotated[bool, typer.Option("--default", help="The default schedule: for every "
                                          "instance without its own, now and later.")]
SystemOpt = Annotated[bool, typer.Option("--system", help="The system backup's schedule "
                                         "(StackHub itself; see `backup system`).")]


@app.command("schedule")
def schedule_cmd(
        name: Annotated[str | None, typer.Argument(help="The instance to back up on a schedule "
                                                   "(none: list the schedules).")] = None,
        every: Annotated[str, typer.Option("--every", help="hourly, daily or weekly.")] = "daily",
        at: Annotated[str, typer.Option("--at", help="HH:MM, server time (hourly: the minute "
                                        "counts).")] = "03:00",
        weekday: Annotated[int, typer.Option("--weekday", min=0, max=6, help="Weekly: 0 Monday "
                                             "... 6 Sunday.")] = 0,
        keep_last: KeepOpt = None, keep_daily: KeepOpt = None, keep_weekly: KeepOpt = None,
        keep_monthly: KeepOpt = None, repo: RepoOpt = None,
        off: Annotated[bool, typer.Option("--off", help="Keep the schedule but pause it (for "
                                          "NAME: also keeps NAME out of the default).")] = False,
        default: DefaultOpt = False, system: SystemOpt = False,
        as_json: JsonOpt = False) -> None:
    """Back NAME (or, with --default, every instance without its own schedule; with
    --system, StackHub itself) up on a schedule and keep N daily/weekly/monthly scheduled
    backups; no NAME: list schedules.

    Defaults: daily at 03:00, keep 7 daily, 4 weekly, 6 monthly. Only scheduled backups of
    each instance are pruned, one instance at a time (a dry run first), and a policy that keeps
    nothing is refused. An instance's own schedule wins over the default; `--off` on NAME
    keeps it out of the default. --system prunes scheduled system backups only.
    """
    if sum((name is not None, default, system)) > 1:
        fail(ClientError("give NAME, --default or --system, not both", code="usage"),
             as_json=as_json)
    if name is None and not default and not system:
        if (every, at, weekday, repo, off) != ("daily", "03:00", 0, None, False) or any(
                k is not None for k in (keep_last, keep_daily, keep_weekly, keep_monthly)):
            fail(ClientError("give NAME or --default (or --system) to set a schedule (without "
                             "any, `backup schedule` lists them)", code="usage"),
                 as_json=as_json)
        schedules_cmd(as_json=as_json)
        return
    body: dict[str, Any] = {"every": every, "at": at, "weekday": weekday, "repository": repo,
                            "enabled": not off, **_keeps(last=keep_last, daily=keep_daily,
                                                         weekly=keep_weekly,
                                                         monthly=keep_monthly)}
    path = "/api/backups/schedules/system" if system else \
        "/api/backups/schedules/default" if default else \
        f"/api/backups/instances/{name}/schedule"
    try:
        read = Client().request("PUT", path, json=body)
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(read)
        return
    if system:
        console.print(f"[green]✔[/] StackHub itself: {_describe(read)}")
    elif default:
        applies = ", ".join(read["instances"]) or "no instance yet"
        console.print(f"[green]✔[/] default: {_describe(read)}; applies to {applies}")
    else:
        console.print(f"[green]✔[/] {name}: {_describe(read)}")


def _describe(read: dict[str, Any]) -> str:
    when = {"hourly": f"hourly at minute {read['at'][3:]}", "daily": f"daily at {read['at']}",
            "weekly": f"weekly on {DAYS[read['weekday']]} at {read['at']}"}[read["every"]]
    keep = ", ".join(f"{read[f'keep_{k}']} {k}" for k in ("last", "daily", "weekly", "monthly")
                     if read[f"keep_{k}"])
    state = f"next {read['next_run_at']}" if read["enabled"] else "paused"
    return f"{when}, keep {keep} ({state})"


DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@app.command("unschedule")
def unschedule_cmd(name: Annotated[str | None, typer.Argument(help="The instance.")] = None,
                   default: DefaultOpt = False, system: SystemOpt = False,
                   as_json: JsonOpt = False) -> None:
    """Remove NAME's own schedule (it follows the default, if any) or, with --default, the
    default schedule, or with --system the system backup's; backups stay."""
    if sum((name is not None, default, system)) != 1:
        fail(ClientError("give NAME or --default (or --system; one of them)", code="usage"),
             as_json=as_json)
    path = "/api/backups/schedules/system" if system else \
        "/api/backups/schedules/default" if default else \
        f"/api/backups/instances/{name}/schedule"
    try:
        Client().request("DELETE", path)
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json({"system": True, "scheduled": False} if system else
                  {"default": True, "scheduled": False} if default else
                  {"instance": name, "scheduled": False})
    elif system:
        console.print("[green]✔[/] StackHub itself is no longer backed up on a schedule")
    elif default:
        console.print("[green]✔[/] there is no default schedule any more")
    else:
        console.print(f"[green]✔[/] {name} has no schedule of its own any more (it follows "
                      "the default schedule, if there is one)")


@app.command("schedules")
def schedules_cmd(as_json: JsonOpt = False) -> None:
    """List the default schedule, the system backup's and the schedule that applies to each
    instance.

    --json: {"default": <the default or null>, "system": <the system backup's or null>,
    "instances": [<schedule with "source": "instance" or "default">]}.
    """
    client = Client()
    found: dict[str, dict[str, Any] | None] = {"default": None, "system": None}
    try:
        items = client.request("GET", "/api/backups/schedules")
    except ClientError as err:
        fail(err, as_json=as_json)
    for which in found:
        try:
            found[which] = client.request("GET", f"/api/backups/schedules/{which}")
        except ClientError as err:
            if err.code != "not_found":
                fail(err, as_json=as_json)
    default, system = found["default"], found["system"]
    if as_json:
        emit_json({"default": default, "system": system, "instances": items})
        return
    if default is not None:
        console.print(f"default: {_describe(default)}")
    if system is not None:
        console.print(f"StackHub itself: {_describe(system)}")
    if not items:
        console.print("No schedules." if default is None else "No instances yet.")
        return
    for item in items:
        source = " (default)" if item["source"] == "default" else ""
        console.print(f"{item['instance']}{source}: {_describe(item)}")


@app.command("status")
def status_cmd(name: Annotated[str | None, typer.Argument(help="Only this instance.")] = None,
               as_json: JsonOpt = False) -> None:
    """Show each instance's last good backup, and alerts (failed, or missing on schedule)."""
    try:
        items = Client().request("GET", "/api/backups/status", params={"instance": name})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(items)
        return
    rows = table("INSTANCE", "HEALTH", "LAST GOOD (UTC)", "NEXT (UTC)", "MESSAGE")
    for item in items:
        health = f"[bold red]{item['health']}[/]" if item["alert"] else item["health"]
        rows.add_row(item["instance"], health, (item["last_success_at"] or "-")[:19],
                     (item["next_run_at"] or "-")[:19], escape(item["message"]))
    console.print(rows)


@app.command("prune")
def prune_cmd(name: str, keep_last: KeepOpt = None, keep_daily: KeepOpt = None,
              keep_weekly: KeepOpt = None, keep_monthly: KeepOpt = None, repo: RepoOpt = None,
              apply: Annotated[bool, typer.Option("--apply", help="Remove them (default: only "
                                                  "show what would go).")] = False,
              as_json: JsonOpt = False) -> None:
    """Apply a retention to NAME's scheduled backups (a dry run unless --apply)."""
    body: dict[str, Any] = {"repository": repo, "dry_run": not apply,
                            **_keeps(last=keep_last, daily=keep_daily, weekly=keep_weekly,
                                     monthly=keep_monthly)}
    try:
        read = Client().request("POST", f"/api/backups/instances/{name}/prune", json=body)
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(read)
        return
    verb = "would remove" if read["dry_run"] else "removed"
    console.print(f"{name}: keeps {len(read['kept'])}, {verb} {len(read['removed'])}")
    for ident in read["removed"]:
        console.print(f"  {ident[:8]}")


@app.command("system")
def system_cmd(repo: RepoOpt = None, as_json: JsonOpt = False) -> None:
    """Back up StackHub itself (users, settings, stores, domains, instance definitions) and
    wait for it with progress; the apps' data has its own backups (`backup create`)."""
    client = Client()
    snapshot: dict[str, Any] | None = None
    try:
        accepted, op, _ = run_operation(client, lambda: client.request(
            "POST", "/api/backups/system", json={"repository": repo} if repo else None),
            quiet=as_json)
        if op["state"] == "succeeded":
            found = client.request("GET", "/api/backups",
                                   params={"repository": accepted["repository"]})
            snapshot = next((s for s in found if s["kind"] == "system"), None)
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json({"operation": op, "snapshot": snapshot})
        if op["state"] != "succeeded":
            raise SystemExit(1)
        return
    done = "StackHub's state is backed up" + (
        f" as {snapshot['short_id']} in {snapshot['repository']} ({_size(snapshot['size'])})"
        if snapshot is not None else "")
    _finish(op, False, done)


app.command("restore-system", help="The same as `stackhub restore-system`: bring a lost box "
            "back on a fresh install.")(restore_system_cmd)


@repo_app.command("list")
def repo_list_cmd(as_json: JsonOpt = False) -> None:
    """List backup repositories."""
    try:
        items = Client().request("GET", "/api/backups/repositories")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(items)
        return
    rows = table("NAME", "KIND", "URL", "DEFAULT")
    for item in items:
        rows.add_row(item["name"], item["kind"], item["url"], "yes" if item["default"] else "")
    console.print(rows)


@repo_app.command("add")
def repo_add_cmd(
        name: Annotated[str, typer.Argument(help="A short name, e.g. nas.")],
        url: Annotated[str, typer.Argument(help="sftp:user@host:/path, s3:https://host/bucket, "
                                           "rest:https://host/, or an absolute path.")],
        access_key_id: Annotated[str | None, typer.Option(
            "--access-key-id", envvar="AWS_ACCESS_KEY_ID", help="S3 access key id.")] = None,
        secret_access_key: Annotated[str | None, typer.Option(
            "--secret-access-key", envvar="AWS_SECRET_ACCESS_KEY", show_default=False,
            help="S3 secret key (better: the AWS_SECRET_ACCESS_KEY variable).")] = None,
        password_file: Annotated[Path | None, typer.Option(
            "--password-file", help="Connect an existing repository with the password in "
            "this file (default: create a new one with a generated password).")] = None,
        as_json: JsonOpt = False) -> None:
    """Add a repository: a new one is created and encrypted with a generated password."""
    body: dict[str, Any] = {"name": name, "url": url}
    if url.startswith("s3:"):
        body.update(access_key_id=access_key_id, secret_access_key=secret_access_key)
    try:
        if password_file is not None:
            try:
                body["password"] = password_file.read_text().strip()
            except OSError as err:
                raise ClientError(f"cannot read {password_file}: {err.strerror}",
                                  code="usage") from err
        read = Client().request("POST", "/api/backups/repositories", json=body)
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(read)
        return
    console.print(f"[green]✔[/] repository {read['name']} is ready at {escape(read['url'])}")
    if password_file is None:
        console.print(f"Save its recovery kit now: stackhub backup repo key {read['name']}")


@repo_app.command("check")
def repo_check_cmd(name: str, subset: Annotated[str | None, typer.Option(
        "--read-data-subset", help="Also read this share of the data, e.g. 5%.")] = None,
                   as_json: JsonOpt = False) -> None:
    """Check a repository's structure (restic check); exit 1 if it has errors."""
    try:
        result = Client().request("POST", f"/api/backups/repositories/{name}/check",
                                  params={"subset": subset})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(result)
    else:
        console.print(escape(result["output"]), highlight=False)
        console.print("[green]✔[/] no errors found" if result["ok"] else
                      "[bold red]the repository has errors[/]")
        for snap in result.get("damaged_snapshots") or []:
            err_console.print(f"damaged: snapshot {snap['short_id']} of "
                              f"{escape(snap['instance'] or 'StackHub')} ({snap['time'][:19]}) "
                              "cannot be restored whole", highlight=False)
    if not result["ok"]:
        raise SystemExit(1)


@repo_app.command("remove")
def repo_remove_cmd(name: str, yes: Annotated[bool, typer.Option(
        "--yes", help="Forget it without asking.")] = False) -> None:
    """Forget a repository and its password (its snapshots stay where they are)."""
    if not yes and (not sys.stdin.isatty() or not typer.confirm(
            f"Forget repository {name} and its password? Keep its recovery kit first.",
            default=False)):
        fail(ClientError("run again with --yes to forget the repository", code="usage"))
    try:
        Client().request("DELETE", f"/api/backups/repositories/{name}")
    except ClientError as err:
        fail(err)
    console.print(f"[green]✔[/] repository {name} forgotten")


@repo_app.command("default")
def repo_default_cmd(name: Annotated[str, typer.Argument(help="The repository to make the "
                                                         "default.")],
                     as_json: JsonOpt = False) -> None:
    """Make NAME the default repository: `backup create` without --repo and schedules without
    a repository use it from now on (existing snapshots stay where they are)."""
    read = call_or_fail(Client(), "POST", f"/api/backups/repositories/{name}/default",
                        as_json=as_json)
    if as_json:
        emit_json(read)
        return
    console.print(f"[green]✔[/] {name} is the default backup repository")


@repo_app.command("key")
def repo_key_cmd(name: str, as_json: JsonOpt = False) -> None:
    """Show a repository's password (the recovery kit): without it the backups are lost."""
    key = call_or_fail(Client(), "GET", f"/api/backups/repositories/{name}/key", as_json=as_json)
    if as_json:
        emit_json(key)
        return
    kit = key.get("kit") or f"URL: {key['url']}\nPassword: {key['password']}\n"
    console.print(kit.split(f"\n\n{key['warning']}")[0], highlight=False, markup=False)
    err_console.print(f"[bold yellow]Warning:[/] {escape(key['warning'])} Save this output as "
                      "a file: `stackhub restore-system --kit FILE` reads it.")


@repo_app.command("ssh-key")
def repo_ssh_key_cmd(as_json: JsonOpt = False) -> None:
    """Show StackHub's SSH public key: add it to the SFTP server's authorized_keys."""
    try:
        key = Client().request("GET", "/api/backups/ssh-key")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(key)
    else:
        console.print(escape(key["public_key"]), highlight=False)
