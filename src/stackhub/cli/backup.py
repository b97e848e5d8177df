"""``stackhub backup ...``: repositories, backups and restores of instances (admins)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from stackhub.cli.client import Client, ClientError
from stackhub.cli.operations import run_operation
from stackhub.cli.output import console, emit_json, err_console, escape, fail, table

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
    """Back up NAME (stopped for the copy, started again) and wait for it to finish."""
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
                yes: Annotated[bool, typer.Option("--yes", help="Replace the instance's "
                                                  "current data without asking.")] = False,
                as_json: JsonOpt = False) -> None:
    """Restore NAME from a backup: its data now is replaced (kept aside until success)."""
    if not yes:
        if as_json or not sys.stdin.isatty():
            fail(ClientError("restoring replaces the instance's current data: run again with "
                             "--yes", code="usage"), as_json=as_json)
        if not typer.confirm(f"Replace {name}'s current data with backup {snapshot}?",
                             default=False):
            raise typer.Exit(1)
    client = Client()
    body = {"repository": repo} if repo else None
    try:
        _, op, _ = run_operation(client, lambda: client.request(
            "POST", f"/api/backups/instances/{name}/snapshots/{snapshot}/restore", json=body),
            quiet=as_json)
    except ClientError as err:
        fail(err, as_json=as_json)
    _finish(op, as_json, f"{name} is restored from {snapshot} and started")


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
def repo_check_cmd(name: str, as_json: JsonOpt = False) -> None:
    """Check a repository's structure (restic check); exit 1 if it has errors."""
    try:
        result = Client().request("POST", f"/api/backups/repositories/{name}/check")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(result)
    else:
        console.print(escape(result["output"]), highlight=False)
        console.print("[green]✔[/] no errors found" if result["ok"] else
                      "[bold red]the repository has errors[/]")
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


@repo_app.command("key")
def repo_key_cmd(name: str, as_json: JsonOpt = False) -> None:
    """Show a repository's password (the recovery kit): without it the backups are lost."""
    try:
        key = Client().request("GET", f"/api/backups/repositories/{name}/key")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(key)
        return
    console.print(f"Repository: {escape(key['name'])} ({escape(key['url'])})")
    console.print(f"Password:   {escape(key['password'])}", highlight=False)
    err_console.print(f"[bold yellow]Warning:[/] {escape(key['warning'])}")


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
