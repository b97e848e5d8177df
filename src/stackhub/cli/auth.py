"""``stackhub login|logout|audit``, ``stackhub user ...`` and ``stackhub token ...``."""

from __future__ import annotations

import getpass
import os
import socket
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stackhub import fsutil
from stackhub.cli.client import Client, ClientError, error_of, user_token_file
from stackhub.cli.output import console, emit_json, err_console, fail, table
from stackhub.config import Paths, default_data_dir

if TYPE_CHECKING:
    import httpx

app = typer.Typer()  # added to the root without a name: login, logout, audit
user_app = typer.Typer(help="Manage user accounts (admins).", no_args_is_help=True)
token_app = typer.Typer(help="Manage your API tokens.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
StdinOpt = Annotated[bool, typer.Option("--password-stdin",
                                        help="Read the password from standard input.")]


def session_client(url: str) -> httpx.Client:
    """Return a cookie-keeping HTTP client for a password sign-in (tests replace this)."""
    import httpx  # loaded only for sign-in: it is slow to import on every command

    return httpx.Client(base_url=url, timeout=30.0)


def _check(response: httpx.Response) -> Any:
    """Decode a sign-in answer; errors are read as the API client reads them."""
    if response.status_code >= 400:
        raise error_of(response.status_code, response.content)
    return response.json() if response.content else None


def _read_password(*, stdin: bool, prompt: str = "Password", confirm: bool = False) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def _save_token(token: str) -> str:
    path = user_token_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fsutil.write_atomic(path, token + "\n", mode=0o600)
    return str(path)


@app.command("login")
def login(url: Annotated[str | None, typer.Option(help="Server URL (default: the local "
                                                   "server).")] = None,
          username: Annotated[str | None, typer.Option("--username", "-u")] = None,
          password_stdin: StdinOpt = False) -> None:
    """Sign in with username, password (and TOTP code); keep an API token for this user."""
    if url is None:
        url = Client().url  # the local server's
    base = url.rstrip("/")
    name = username or str(typer.prompt("Username"))
    password = _read_password(stdin=password_stdin)
    import httpx

    http = session_client(base)
    try:
        result = _check(http.post("/api/auth/login",
                                  json={"username": name, "password": password}))
        csrf = {"X-CSRF-Token": http.cookies.get("stackhub_csrf") or "", "Origin": base}
        if result["totp_required"]:
            code = str(typer.prompt("Two-factor code (or a recovery code)"))
            result = _check(http.post("/api/auth/totp", json={"code": code}, headers=csrf))
            csrf["X-CSRF-Token"] = http.cookies.get("stackhub_csrf") or ""
        host = socket.gethostname()[:40] or "cli"
        created = _check(http.post("/api/tokens", json={"name": f"cli@{host}"}, headers=csrf))
        _check(http.post("/api/auth/logout", headers=csrf))  # the token replaces the session
    except ClientError as err:
        fail(err)
    except httpx.HTTPError as err:
        fail(ClientError(f"cannot reach {base}: {err}", code="server_unavailable"))
    finally:
        http.close()
    where = _save_token(created["token"])
    user = result["user"]
    console.print(f"Signed in to {base} as [bold]{user['name']}[/] ({user['role']}); "
                  f"token saved to {where}")


@app.command("logout")
def logout() -> None:
    """Revoke the token saved by ``stackhub login`` and forget it."""
    path = user_token_file()
    try:
        token = path.read_text().strip()
    except OSError:
        err_console.print("Not signed in (no saved token).")
        return
    try:
        client = Client(token=token)
        current = [t for t in client.request("GET", "/api/tokens") if t.get("current")]
        for item in current:
            client.request("DELETE", f"/api/tokens/{item['id']}")
    except ClientError as err:
        err_console.print(f"[yellow]Could not revoke the token on the server:[/] {err.message}",
                          highlight=False)
    path.unlink(missing_ok=True)
    console.print("Signed out; the saved token is gone.")


@app.command("audit")
def audit(limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1000)] = 50,
          as_json: JsonOpt = False) -> None:
    """Show recent security events (admins)."""
    try:
        entries = Client().request("GET", "/api/audit", params={"limit": limit})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(entries)
        return
    rows = table("WHEN", "ACTOR", "ACTION", "TARGET", "IP", "OK")
    for item in entries:
        rows.add_row(item["at"][:19].replace("T", " "), item["actor"], item["action"],
                      item["target"], item["ip"], "yes" if item["success"] else "[red]NO[/]")
    console.print(rows)


# -- users ----------------------------------------------------------------------------------

@user_app.command("list")
def user_list(as_json: JsonOpt = False) -> None:
    """List accounts."""
    try:
        users = Client().request("GET", "/api/users")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(users)
        return
    rows = table("NAME", "ROLE", "2FA", "STATUS", "INSTANCES")
    for item in users:
        rows.add_row(item["name"], item["role"], "on" if item["totp_enabled"] else "off",
                      "disabled" if item["disabled"] else "active",
                      ", ".join(item["instances"]) if item["role"] == "member" else "(all)")
    console.print(rows)


@user_app.command("add")
def user_add(name: str,
             role: Annotated[str, typer.Option(help="admin or member.")] = "member",
             password_stdin: StdinOpt = False, as_json: JsonOpt = False) -> None:
    """Create an account (you are asked for its password)."""
    password = _read_password(stdin=password_stdin, prompt=f"Password for {name}",
                              confirm=not password_stdin)
    try:
        user = Client().request("POST", "/api/users", json={"username": name,
                                                            "password": password, "role": role})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(user)
    else:
        console.print(f"Created {user['role']} [bold]{user['name']}[/]")


def _patch(name: str, change: dict[str, Any], done: str) -> None:
    try:
        Client().request("PATCH", f"/api/users/{name}", json=change)
    except ClientError as err:
        fail(err)
    console.print(f"{name} {done}")


@user_app.command("disable")
def user_disable(name: str) -> None:
    """Disable an account; its sessions end at once."""
    _patch(name, {"disabled": True}, "is disabled")


@user_app.command("enable")
def user_enable(name: str) -> None:
    """Enable a disabled account."""
    _patch(name, {"disabled": False}, "is enabled")


@user_app.command("remove")
def user_remove(name: str, yes: Annotated[bool, typer.Option("--yes", "-y")] = False) -> None:
    """Delete an account with its sessions and tokens."""
    if not yes and sys.stdin.isatty() and not typer.confirm(f"Delete user {name}?"):
        raise typer.Exit(1)
    try:
        Client().request("DELETE", f"/api/users/{name}")
    except ClientError as err:
        fail(err)
    console.print(f"Deleted {name}")


@user_app.command("grant")
def user_grant(name: str, instances: Annotated[list[str] | None, typer.Argument(
               help="Every instance the member may use (replaces the list).")] = None) -> None:
    """Set the instances a member may see and open."""
    try:
        user = Client().request("PUT", f"/api/users/{name}/instances",
                                json={"instances": instances or []})
    except ClientError as err:
        fail(err)
    console.print(f"{name} may use: {', '.join(user['instances']) or 'nothing'}")


@user_app.command("reset-password")
def user_reset_password(name: str, password_stdin: StdinOpt = False,
                        reset_2fa: Annotated[bool, typer.Option(
                            "--reset-2fa", help="Also turn two-factor auth off.")] = False
                        ) -> None:
    """Set a new password on this server itself (root or the data owner; never over HTTP)."""
    from stackhub.auth.service import AuthService  # server-side code: imported only here
    from stackhub.state.db import Database

    paths = Paths(default_data_dir())
    try:
        owner = paths.root.stat().st_uid
    except OSError:
        fail(ClientError(f"no StackHub data directory at {paths.root} (set STACKHUB_DATA_DIR)"))
    if os.geteuid() not in (0, owner):
        fail(ClientError(f"only root or the owner of {paths.root} may reset passwords"))
    if not paths.db.is_file():
        fail(ClientError(f"no StackHub database at {paths.db}"))
    password = _read_password(stdin=password_stdin, prompt=f"New password for {name}",
                              confirm=not password_stdin)
    db = Database(paths.db)
    try:
        auth = AuthService(db=db, paths=paths)
        auth.accounts.reset_password(name, password, actor=f"cli:{getpass.getuser()}",
                                     reset_2fa=reset_2fa)
    except Exception as err:  # StackHubError and sqlite errors alike
        fail(ClientError(getattr(err, "message", str(err))))
    finally:
        db.close()
    console.print(f"New password set for {name}; their sessions have ended"
                  + (" and two-factor auth is off" if reset_2fa else ""))


# -- tokens ---------------------------------------------------------------------------------

@token_app.command("create")
def token_create(name: str,
                 expires_days: Annotated[int | None, typer.Option("--expires-days")] = None,
                 as_json: JsonOpt = False) -> None:
    """Create an API token for scripts; it is shown only now."""
    try:
        created = Client().request("POST", "/api/tokens",
                                   json={"name": name, "expires_days": expires_days})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(created)
        return
    console.print(f"Token [bold]{created['name']}[/] ({created['id']}); copy it now, it is "
                  "not shown again:")
    sys.stdout.write(created["token"] + "\n")


@token_app.command("list")
def token_list(as_json: JsonOpt = False) -> None:
    """List your API tokens."""
    try:
        tokens = Client().request("GET", "/api/tokens")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(tokens)
        return
    rows = table("ID", "NAME", "CREATED", "LAST USED", "EXPIRES")
    for item in tokens:
        rows.add_row(item["id"], item["name"] + (" (this one)" if item["current"] else ""),
                      item["created_at"][:10], (item["last_used"] or "never")[:10],
                      (item["expires_at"] or "never")[:10])
    console.print(rows)


@token_app.command("revoke")
def token_revoke(token_id: str) -> None:
    """Revoke one of your API tokens."""
    try:
        Client().request("DELETE", f"/api/tokens/{token_id}")
    except ClientError as err:
        fail(err)
    console.print(f"Revoked {token_id}")
