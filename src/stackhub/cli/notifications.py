"""``stackhub notifications ...``: the bell's list, read marks, and delivery channels."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from stackhub.cli.client import Client, ClientError
from stackhub.cli.output import console, emit_json, err_console, escape, fail

app = typer.Typer(help="Notifications: list them, mark them read, deliver them by webhook or "
                  "e-mail.", invoke_without_command=True, no_args_is_help=False)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
CHANNELS = ("webhook", "email")


@app.callback()
def list_cmd(ctx: typer.Context, unread: Annotated[bool, typer.Option(
        "--unread", help="Only unread ones.")] = False, as_json: JsonOpt = False) -> None:
    """List notifications, newest first (unread ones marked with *)."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        found = Client().request("GET", "/api/notifications",
                                 params={"unread": "true" if unread else None})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(found)
        return
    if not found["items"]:
        console.print("No notifications.")
        return
    for item in found["items"]:  # one line each: texts are long, a table would cut them
        state = "resolved" if item["resolved"] else item["severity"]
        mark = " " if item["read"] else "*"
        console.print(f"{mark} {item['id']:>4}  {item['updated_at'][:16].replace('T', ' ')}  "
                      f"{state:<8}  {escape(item['text'])}  -> {item['link']}",
                      highlight=False)
    console.print(f"{found['unread']} unread")


@app.command("read")
def read_cmd(ident: Annotated[int | None, typer.Argument(help="The notification's id.")] = None,
             all_: Annotated[bool, typer.Option("--all", help="Mark every one read.")] = False,
             as_json: JsonOpt = False) -> None:
    """Mark a notification (or --all) read."""
    if (ident is None) == (not all_):
        fail(ClientError("give one notification id or --all", code="usage"), as_json=as_json)
    try:
        result = Client().request("POST", "/api/notifications/read-all") if all_ else \
            Client().request("POST", f"/api/notifications/{ident}/read")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(result)
    elif all_:
        console.print(f"[green]✔[/] {result['marked']} marked read")
    else:
        console.print(f"[green]✔[/] notification {ident} marked read")


def _show_channel(item: dict[str, Any]) -> None:
    state = "off" if not item["enabled"] else "on"
    if not item["configured"]:
        console.print(f"{item['kind']}: not configured")
        return
    where = item["url"] if item["kind"] == "webhook" else \
        f"{item['host']}:{item['port']} -> {', '.join(item['recipients'])}"
    last = "" if item["last_at"] is None else \
        f"; last delivery {'ok' if item['last_ok'] else 'failed: ' + str(item['last_error'])}"
    console.print(f"{item['kind']}: {state}, {escape(where)}{escape(last)}", highlight=False)


@app.command("channels")
def channels_cmd(as_json: JsonOpt = False) -> None:
    """Show the delivery channels (admins; secrets are never shown)."""
    try:
        found = Client().request("GET", "/api/notifications/channels")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(found)
        return
    for item in found:
        _show_channel(item)


@app.command("webhook")
def webhook_cmd(url: Annotated[str, typer.Argument(help="An http:// or https:// URL.")],
                disable: Annotated[bool, typer.Option("--disable", help="Keep it configured "
                                                      "but send nothing.")] = False,
                rotate_secret: Annotated[bool, typer.Option(
                    "--rotate-secret", help="Make a new signing secret.")] = False,
                as_json: JsonOpt = False) -> None:
    """POST every notification as signed JSON to URL (X-StackHub-Signature: sha256=HMAC)."""
    try:
        read = Client().request("PUT", "/api/notifications/channels/webhook",
                                json={"url": url, "enabled": not disable,
                                      "rotate_secret": rotate_secret})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(read)
        return
    _show_channel(read)
    if read.get("secret"):
        console.print(f"Signing secret (shown once): {read['secret']}", highlight=False)


@app.command("email")
def email_cmd(
        host: Annotated[str, typer.Option("--host", help="The SMTP server.")],
        sender: Annotated[str, typer.Option("--from", help="The sender address.")],
        to: Annotated[list[str], typer.Option("--to", help="A recipient (repeat for more).")],
        port: Annotated[int, typer.Option("--port", help="The SMTP port.")] = 587,
        username: Annotated[str | None, typer.Option("--username")] = None,
        password_file: Annotated[Path | None, typer.Option(
            "--password-file", help="A file holding the SMTP password (or - for stdin); "
            "without it the stored one is kept.")] = None,
        starttls: Annotated[bool, typer.Option("--starttls/--no-starttls",
                                               help="Upgrade with STARTTLS.")] = True,
        ssl: Annotated[bool, typer.Option("--ssl", help="TLS from the start (port 465).")] = False,
        disable: Annotated[bool, typer.Option("--disable")] = False,
        as_json: JsonOpt = False) -> None:
    """Send every notification by e-mail through an SMTP server."""
    body: dict[str, Any] = {"host": host, "port": port, "sender": sender, "recipients": to,
                            "username": username, "starttls": starttls and not ssl, "ssl": ssl,
                            "enabled": not disable}
    try:
        if password_file is not None:
            try:
                text = sys.stdin.read() if str(password_file) == "-" else \
                    password_file.read_text()
            except OSError as err:
                raise ClientError(f"cannot read {password_file}: {err.strerror}",
                                  code="usage") from err
            body["password"] = text.strip("\r\n")
        read = Client().request("PUT", "/api/notifications/channels/email", json=body)
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(read)
    else:
        _show_channel(read)


@app.command("test")
def test_cmd(channel: Annotated[str, typer.Argument(help="webhook or email.")],
             as_json: JsonOpt = False) -> None:
    """Send a test notification through a channel now; exit 1 if it was not delivered."""
    try:
        result = Client().request("POST", f"/api/notifications/channels/{channel}/test")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(result)
    elif result["ok"]:
        console.print(f"[green]✔[/] test sent by {channel}")
    else:
        err_console.print(f"[bold red]Error:[/] {escape(result['error'] or 'not delivered')}",
                          highlight=False)
    if not result["ok"]:
        raise SystemExit(1)


@app.command("remove")
def remove_cmd(channel: Annotated[str, typer.Argument(help="webhook or email.")],
               yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Forget a delivery channel and its secret."""
    if not yes and (not sys.stdin.isatty() or not typer.confirm(
            f"Forget the {channel} channel?", default=False)):
        fail(ClientError("run again with --yes to forget the channel", code="usage"))
    try:
        Client().request("DELETE", f"/api/notifications/channels/{channel}")
    except ClientError as err:
        fail(err)
    console.print(f"[green]✔[/] the {channel} channel is forgotten")
