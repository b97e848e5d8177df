"""``stackhub domain ...``: the base domain, custom domains, DNS checks and the internal CA."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from stackhub.cli.client import Client, ClientError, error_of
from stackhub.cli.operations import run_operation
from stackhub.cli.output import console, emit_json, err_console, escape, fail, table

app = typer.Typer(help="Serve apps at their own names with HTTPS: base domain, custom domains.",
                  no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _ascii(domain: str) -> str:
    """Return an IDN domain in punycode (the server normalises the rest)."""
    if domain.isascii():
        return domain.strip().lower().rstrip(".")
    import idna

    try:
        return str(idna.encode(domain.strip().rstrip("."), uts46=True).decode("ascii"))
    except idna.IDNAError as err:
        raise ClientError(f"{domain!r} is not a valid domain: {err}", code="usage") from err


def _wildcard(client: Client, base: str, as_json: bool) -> None:
    """Obtain the base's wildcard by DNS-01 (an operation), then show the base."""
    accepted, op, _ = run_operation(client, lambda: client.request(
        "POST", "/api/gateway/wildcard", json={"base": base}), quiet=as_json)
    read = client.request("GET", "/api/domains/base") if op["state"] == "succeeded" else None
    if as_json:
        emit_json({"operation": op, "base": accepted["base"], "read": read})
    elif read is not None:
        _print_base(read)
    else:
        err_console.print(f"[bold red]Error:[/] the wildcard for {escape(accepted['base'])} "
                          f"{op['state']}: {escape(op.get('error') or 'no details')} (nothing "
                          "was changed)", highlight=False)
    if op["state"] != "succeeded":
        raise typer.Exit(1)


def _print_base(read: dict[str, Any]) -> None:
    gateway = read["gateway"]
    if read["base"]:
        console.print(f"Base domain: [bold]{escape(read['base'])}[/] (certificates: "
                      f"{read['tls']}); console at https://{escape(read['console'])}")
    else:
        console.print("No base domain (apps are reached by their ports).")
    state = "running" if gateway["running"] else "not running"
    console.print(f"Gateway: {state} ({gateway['mode']}), ports {gateway['http_port']}/"
                  f"{gateway['https_port']}, restarts {gateway['restarts']}")
    if gateway["error"]:
        err_console.print(f"[bold red]Gateway error:[/] {escape(gateway['error'])}",
                          highlight=False)
    wildcard = read.get("wildcard")
    if wildcard:
        console.print(f"Wildcard {escape(', '.join(wildcard['names']))}: "
                      f"{escape(wildcard['issuer'] or 'not obtained yet')}, expires "
                      f"{(wildcard['expires_at'] or '-')[:10]}, renewed from "
                      f"{(wildcard['renew_from'] or '-')[:10]}")
        for record in wildcard["records"]:
            console.print(f"  DNS record to create: {escape(record['name'])}. "
                          f"{record['type']} {escape(record['value'])}")
        dns = wildcard.get("dns")
        if dns and not dns["ok"]:
            err_console.print(f"[bold yellow]DNS:[/] {escape(dns['problem'] or '')}: "
                              f"{escape(dns['fix'] or '')}", highlight=False)
        elif dns:
            console.print(f"  [green]✔[/] *.{escape(read['base'])} reaches this box")
        for problem in (wildcard["warning"], wildcard["error"]):
            if problem:
                err_console.print(f"[bold yellow]Warning:[/] {escape(problem)}",
                                  highlight=False)
    dns = read.get("dns")  # tls acme: HTTP-01 needs *.<base> to reach this box
    if dns and not dns["ok"]:
        err_console.print(f"[bold yellow]Warning:[/] {escape(dns['problem'] or '')}: "
                          f"{escape(dns['fix'] or '')} (certificates under "
                          f"{escape(read['base'])} cannot be issued until then)",
                          highlight=False)
    elif dns:
        console.print(f"  [green]✔[/] *.{escape(read['base'])} reaches this box")
    if read["tls"] == "internal":
        console.print("LAN names use StackHub's own CA: install its root on your devices "
                      "(stackhub domain ca --out stackhub-ca.crt)")


@app.command("base")
def base_cmd(name: Annotated[str | None, typer.Argument(
                 help="The base domain, e.g. box.example.com or home.lan (omit to show it).")]
             = None,
             tls: Annotated[str, typer.Option(
                 "--tls", help="auto, internal (StackHub's CA, for LAN names), acme (HTTP-01 "
                 "per name) or dns01 (one wildcard by DNS-01 through the DNS provider: no "
                 "port 80 needed).")]
             = "auto",
             clear: Annotated[bool, typer.Option("--clear", help="Remove the base domain.")]
             = False,
             as_json: JsonOpt = False) -> None:
    """Show or set the base domain: every app gets <app>.<base>, the console console.<base>."""
    try:
        if tls not in ("auto", "internal", "acme", "dns01"):
            raise ClientError("--tls must be auto, internal, acme or dns01", code="usage")
        client = Client()
        if tls == "dns01" and name is not None and not clear:
            _wildcard(client, _ascii(name), as_json)
            return
        if clear:
            read = client.request("DELETE", "/api/domains/base")
        elif name is None:
            read = client.request("GET", "/api/domains/base")
        else:
            read = client.request("PUT", "/api/domains/base",
                                  json={"base": _ascii(name), "tls": tls})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(read)
    else:
        _print_base(read)


@app.command("add")
def add_cmd(instance: Annotated[str, typer.Argument(help="The app (instance) to serve.")],
            domain: Annotated[str, typer.Argument(help="The domain, e.g. cloud.example.com.")],
            as_json: JsonOpt = False) -> None:
    """Bind DOMAIN to an app: check DNS, obtain the certificate, wait until it serves."""
    client = Client()
    try:
        accepted, op, _ = run_operation(
            client, lambda: client.request("POST", "/api/domains", json={
                "instance": instance, "domain": _ascii(domain)}), quiet=as_json)
    except ClientError as err:
        fail(err, as_json=as_json)
    warning = _app_problem(client, accepted) if op["state"] == "succeeded" else None
    if as_json:
        emit_json({"operation": op, "domain": accepted["domain"],
                   "instance": accepted["instance"], "warning": warning})
    elif op["state"] == "succeeded" and warning:
        console.print(f"[green]✔[/] https://{escape(accepted['domain'])} is bound to "
                      f"{escape(instance)} with a valid certificate")
        err_console.print(f"[bold yellow]Warning:[/] {escape(warning)}", highlight=False)
    elif op["state"] == "succeeded":
        console.print(f"[green]✔[/] https://{escape(accepted['domain'])} serves "
                      f"{escape(instance)}")
    else:
        err_console.print(f"[bold red]Error:[/] {escape(accepted['domain'])} {op['state']}: "
                          f"{escape(op.get('error') or 'no details')}", highlight=False)
    if op["state"] != "succeeded":
        raise typer.Exit(1)


def _app_problem(client: Client, accepted: dict[str, Any]) -> str | None:
    """Return why the app itself did not answer when the domain was bound, or None."""
    try:
        found = client.request("GET", "/api/domains", params={"instance": accepted["instance"]})
    except ClientError:
        return None
    for domain in found if isinstance(found, list) else []:
        if domain.get("name") == accepted["domain"]:
            return domain.get("error") or None
    return None


@app.command("remove")
def remove_cmd(instance: Annotated[str, typer.Argument(help="The app the domain serves.")],
               domain: Annotated[str, typer.Argument(help="The custom domain.")],
               as_json: JsonOpt = False) -> None:
    """Unbind a custom domain from an app."""
    try:
        name = _ascii(domain)
        Client().request("DELETE", f"/api/domains/{name}", params={"instance": instance})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json({"removed": name, "instance": instance})
    else:
        console.print(f"Removed {escape(name)} from {escape(instance)}")


@app.command("list")
def list_cmd(instance: Annotated[str | None, typer.Argument(
                 help="Only this app's domains.")] = None,
             as_json: JsonOpt = False) -> None:
    """List the names the gateway serves: automatic names and custom domains."""
    try:
        items = Client().request("GET", "/api/domains", params={"instance": instance})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(items)
        return
    if not items:
        console.print("No domains yet: set a base domain (stackhub domain base NAME) or bind "
                      "one (stackhub domain add APP DOMAIN).")
        return
    rows = table("DOMAIN", "APP", "KIND", "STATE", "DNS", "CERTIFICATE", "EXPIRES", "ERROR")
    for item in items:
        expires = (item["expires_at"] or "-")[:10]
        if item.get("warning"):
            expires = f"[bold yellow]{expires} (!)[/]"
        state = item["state"] + (" (protected)" if item.get("protected") else "")
        dns = item.get("dns_status") or "-"
        if dns in ("missing", "wrong"):
            dns = f"[bold yellow]{dns}[/]"
        rows.add_row(item["name"], item["instance"], item["kind"], state, dns,
                     escape(item["issuer"] or item["tls"]), expires,
                     escape(item["error"] or ""))
    console.print(rows)
    for item in items:
        record = item.get("record")
        if record:
            dot = "." if record["type"] == "CNAME" else ""
            err_console.print(f"[bold yellow]DNS:[/] {escape(item['name'])}: create "
                              f"{escape(record['name'])}. {record['type']} "
                              f"{escape(record['value'])}{dot}", highlight=False)
        if item.get("warning"):
            err_console.print(f"[bold yellow]Warning:[/] {escape(item['name'])}: "
                              f"{escape(item['warning'])}", highlight=False)


@app.command("recheck")
def recheck_cmd(as_json: JsonOpt = False) -> None:
    """Re-check every custom domain's DNS now (flag dangling ones) and expiring certificates.

    The server also does this by itself every STACKHUB_DOMAIN_RECHECK seconds (6 h default).
    Exit status 1 when a domain is dangling or a certificate expires within 14 days.
    """
    try:
        read = Client().request("POST", "/api/domains/recheck")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(read)
    else:
        console.print(f"Checked {read['checked']} custom domain(s).")
        for name in read["dangling"]:
            err_console.print(f"[bold red]Dangling:[/] {escape(name)} no longer reaches this box"
                              " (stackhub domain list shows why)", highlight=False)
        for name in read["expiring"]:
            err_console.print(f"[bold yellow]Expiring:[/] {escape(name)}: certificate expires "
                              "within 14 days", highlight=False)
        if not read["dangling"] and not read["expiring"]:
            console.print("[green]✔[/] every domain reaches this box; no certificate expires "
                          "within 14 days")
    if read["dangling"] or read["expiring"]:
        raise typer.Exit(1)


def protect_cmd(name: Annotated[str, typer.Argument(help="The app (instance).")],
                off: Annotated[bool, typer.Option("--off", help="Take the sign-in away.")]
                = False,
                as_json: JsonOpt = False) -> None:
    """Put StackHub's sign-in (with 2FA) in front of an app's gateway names (--off: remove it).

    Only signed-in users who may see the app (admins, members granted it) reach it; the app
    gets Remote-User and Remote-Groups headers. While protected, the app's web port is
    published on 127.0.0.1 only (its container is recreated), so http://HOST:PORT cannot
    bypass the sign-in from other machines; --off publishes it on all interfaces again.
    """
    try:
        read = Client().request("PUT", f"/api/instances/{name}/protection",
                                json={"protected": not off})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(read)
        return
    if read["protected"]:
        console.print(f"[green]✔[/] {escape(name)} is behind StackHub's sign-in: "
                      f"{escape(', '.join(read['hosts']) or 'no gateway name yet')}")
        if read.get("local_port"):
            console.print(f"  its port {read['local_port']} now answers on 127.0.0.1 only: "
                          "other machines go through the gateway's sign-in")
    else:
        console.print(f"{escape(name)} is no longer behind StackHub's sign-in; its web port is "
                      "published on all interfaces again")
    if read.get("operation"):
        console.print(f"  operation {escape(read['operation'])} (stackhub op list)",
                      highlight=False)
    if read["warning"]:
        err_console.print(f"[bold yellow]Note:[/] {escape(read['warning'])}", highlight=False)


@app.command("check")
def check_cmd(domain: Annotated[str, typer.Argument(help="The domain to diagnose.")],
              instance: Annotated[str | None, typer.Option(
                  "--instance", help="The app it should serve (for the CNAME to expect).")]
              = None,
              as_json: JsonOpt = False) -> None:
    """Diagnose a domain's DNS: where it points, and the exact record to create if wrong."""
    try:
        check = Client().request("GET", "/api/domains/check",
                                 params={"domain": _ascii(domain), "instance": instance})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(check)
    else:
        chain = " -> ".join([check["domain"], *check["cnames"]])
        console.print(f"{escape(chain)}: {', '.join(check['addresses']) or 'no address'}")
        if check["ok"]:
            console.print(f"[green]✔[/] {escape(check['domain'])} reaches this box")
        else:
            err_console.print(f"[bold red]✘[/] {escape(check['problem'] or '')}",
                              highlight=False)
            err_console.print(f"Fix: {escape(check['fix'] or '')}", highlight=False)
    if not check["ok"]:
        raise typer.Exit(1)


@app.command("ca")
def ca_cmd(out: Annotated[Path | None, typer.Option(
        "--out", help="Write the root certificate to this file (default: print it).")]
        = None) -> None:
    """Download the root certificate of StackHub's internal CA (for LAN names)."""
    from stackhub.cli.transport import TransportError

    try:
        client = Client()
        try:
            reply = client.transport.request("GET", "/api/domains/ca", None)
        except TransportError as err:
            raise client._unreachable(err) from err
        if reply.status >= 400:
            raise error_of(reply.status, reply.body)
    except ClientError as err:
        fail(err)
    if out is None:
        typer.echo(reply.body.decode())
    else:
        out.write_bytes(reply.body)
        console.print(f"Wrote {escape(str(out))}: install it as a trusted root on each device "
                      "(docs/cli.md, \"Trusting the LAN certificates\")")


@app.command("renew")
def renew_cmd(as_json: JsonOpt = False) -> None:
    """Renew the base's DNS-01 wildcard now if it is due (the server checks daily by itself)."""
    client = Client()
    try:
        accepted, op, _ = run_operation(client, lambda: client.request(
            "POST", "/api/gateway/wildcard/renew"), quiet=as_json)
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json({"operation": op, "base": accepted["base"]})
    elif op["state"] == "succeeded":
        console.print(f"[green]✔[/] renewed the wildcard of {escape(accepted['base'])}")
    else:
        err_console.print(f"[bold red]Error:[/] renewing {op['state']}: "
                          f"{escape(op.get('error') or 'no details')}", highlight=False)
    if op["state"] != "succeeded":
        raise typer.Exit(1)


provider_app = typer.Typer(help="The DNS provider (credentials for DNS-01 wildcards).",
                           no_args_is_help=True)
app.add_typer(provider_app, name="provider")


def _pairs(pairs: list[str]) -> dict[str, str]:
    """KEY=VALUE (the value may hold '='), or KEY alone: the value from this shell's KEY."""
    import os

    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            if key not in os.environ:
                raise ClientError(f"{key[:70]!r}: write KEY=VALUE, or export {key[:70]} and "
                                  "give KEY alone (keeps the secret out of the command line)",
                                  code="usage")
            value = os.environ[key]
        if key in env:
            raise ClientError(f"{key[:70]} is given twice", code="usage")
        env[key] = value
    return env


def _print_provider(read: dict[str, Any]) -> None:
    if read["kind"] is None:
        console.print("No DNS provider (stackhub domain provider set KIND --env KEY=VALUE).")
        return
    via = " through lego's exec provider and lexicon" if read.get("via_exec") else ""
    console.print(f"DNS provider: [bold]{escape(read['kind'])}[/] (lego: {read['lego']}{via}); "
                  f"keys set: {escape(', '.join(read['keys']))}"
                  + (f"; CA account {escape(read['email'])}" if read["email"] else "")
                  + (f"; zone {escape(read['zone'])}" if read.get("zone") else "")
                  + ("; StackHub manages the DNS records" if read.get("records") else ""))


@provider_app.command("set")
def provider_set_cmd(kind: Annotated[str, typer.Argument(
                         help="cloudflare, alidns, tencentcloud, dnspod, route53, rfc2136, "
                         "pdns, httpreq or exec (stackhub domain provider kinds).")],
                     env: Annotated[list[str] | None, typer.Option(
                         "--env", help="KEY=VALUE, or KEY alone to take this shell's $KEY "
                         "(repeat).")] = None,
                     email: Annotated[str | None, typer.Option(
                         "--email", help="The account email at the CA.")] = None,
                     zone: Annotated[str | None, typer.Option(
                         "--zone", help="The DNS zone the provider manages (default: the "
                         "base domain's last two labels).")] = None,
                     as_json: JsonOpt = False) -> None:
    """Set the DNS provider and its credentials (stored 0600; never shown again)."""
    try:
        read = Client().request("PUT", "/api/gateway/dns-provider", json={
            "kind": kind, "env": _pairs(env or []), "email": email, "zone": zone})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(read)
    else:
        _print_provider(read)


@provider_app.command("show")
def provider_show_cmd(as_json: JsonOpt = False) -> None:
    """Show the DNS provider: its kind and which keys are set (never their values)."""
    try:
        read = Client().request("GET", "/api/gateway/dns-provider")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(read)
    else:
        _print_provider(read)


@provider_app.command("remove")
def provider_remove_cmd(as_json: JsonOpt = False) -> None:
    """Forget the DNS provider's credentials."""
    try:
        Client().request("DELETE", "/api/gateway/dns-provider")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json({"removed": True})
    else:
        console.print("Removed the DNS provider")


@provider_app.command("kinds")
def provider_kinds_cmd(as_json: JsonOpt = False) -> None:
    """List the DNS providers, their keys, whether DNS-01 works here and who manages records."""
    try:
        items = Client().request("GET", "/api/gateway/dns-providers")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(items)
        return
    rows = table("KIND", "PROVIDER", "NEEDS", "DNS-01", "RECORDS")
    for item in items:
        dns01 = ("via exec" if item.get("via_exec") else "yes") if item["available"] else "no"
        rows.add_row(item["kind"], escape(item["title"]),
                     " or ".join("+".join(g) for g in item["required"]), dns01,
                     "yes" if item.get("records") else "no")
    console.print(rows)


def _print_records(read: dict[str, Any]) -> None:
    if not read["managed"]:
        console.print("StackHub does not manage DNS records: set a provider it can write with "
                      "(stackhub domain provider kinds, column RECORDS).")
        return
    console.print(f"Zone [bold]{escape(read['zone'] or '?')}[/]; public address "
                  f"{escape(read['public_ip'] or 'not learnt yet')} (from "
                  f"{escape(read['source'])})")
    rows = table("NAME", "TYPE", "CONTENT", "PUBLISHED")
    for item in read["records"]:
        rows.add_row(escape(item["name"]), item["type"], escape(item["content"]),
                     "yes" if item["published"] else "no")
    console.print(rows)
    if read["error"]:
        console.print(f"[red]Last error:[/] {escape(read['error'])}")


@app.command("records")
def records_cmd(sync: Annotated[bool, typer.Option(
                    "--sync", help="Learn the public address and write the records now.")]
                = False, as_json: JsonOpt = False) -> None:
    """Show (or --sync) the DNS records StackHub keeps at the DNS provider."""
    try:
        read = Client().request("POST" if sync else "GET",
                                "/api/gateway/dns-records" + ("/sync" if sync else ""))
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(read)
    else:
        _print_records(read)
