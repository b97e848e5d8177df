"""``stackhub catalog ...``: list, search and show catalog apps."""

from __future__ import annotations

import os
import re
from typing import Annotated, Any

import typer

from stackhub.cli.client import Client, ClientError
from stackhub.cli.output import console, emit_json, fail, table

app = typer.Typer(help="Browse the app catalog of every store.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
StoreOpt = Annotated[str | None, typer.Option("--store", help="Only this store.")]
LocaleOpt = Annotated[str | None, typer.Option(
    "--locale", help="Language for texts, e.g. en or zh-CN (default: from $LANG).")]
LANG = re.compile(r"^([a-z]{2,3})(?:_([A-Z]{2}))?")
REF = re.compile(r"^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$")


def default_locale() -> str:
    """Return the locale from $LC_ALL/$LANG as ``zh-CN``, else ``en``."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        match = LANG.match(os.environ.get(name, ""))
        if match:
            return "-".join(p for p in match.groups() if p)
    return "en"


def _apps(params: dict[str, Any], as_json: bool) -> None:
    params = {k: v for k, v in params.items() if v is not None}
    try:
        apps = Client().request("GET", "/api/catalog/apps", params=params)
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(apps)
        return
    if not apps:
        console.print("No apps found.")
        return
    rows = table()
    rows.add_column("ID", no_wrap=True)
    rows.add_column("VERSION", no_wrap=True, max_width=16)
    for header in ("FORMAT", "CATEGORY", "TITLE", "INSTALLABLE"):
        rows.add_column(header)
    for item in apps:
        ok = "yes" if item["installable"] else "[red]no[/]: " + "; ".join(item["problems"])[:60]
        rows.add_row(item["id"], item["version"], item["format"], ", ".join(item["category"]),
                      item["title"], ok)
    console.print(rows)
    console.print(f"{len(apps)} apps")


@app.command("list")
def list_cmd(store: StoreOpt = None,
             category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
             installable: Annotated[bool | None, typer.Option(
                 "--installable/--not-installable", help="Filter by installability.")] = None,
             locale: LocaleOpt = None, as_json: JsonOpt = False) -> None:
    """List catalog apps, filtered by store, category or installability."""
    _apps({"store": store, "category": category, "installable": installable,
           "locale": locale or default_locale()}, as_json)


@app.command("search")
def search_cmd(text: str, store: StoreOpt = None, locale: LocaleOpt = None,
               as_json: JsonOpt = False) -> None:
    """Search titles, taglines and descriptions in every language."""
    _apps({"q": text, "store": store, "locale": locale or default_locale()}, as_json)


@app.command("categories")
def categories_cmd(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """List categories with their app counts."""
    try:
        found = Client().request("GET", "/api/catalog/categories",
                                 params={"store": store} if store else {})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(found)
        return
    for item in found:
        console.print(f"{item['name']:<24} {item['count']}", highlight=False)


@app.command("show")
def show_cmd(ref: Annotated[str, typer.Argument(metavar="STORE/APP")], locale: LocaleOpt = None,
             as_json: JsonOpt = False) -> None:
    """Show one catalog app: texts, parameters, compatibility."""
    if not REF.fullmatch(ref):
        fail(ClientError(f"{ref!r} is not a catalog name STORE/APP", code="usage"),
             as_json=as_json)
    try:
        item = Client().request("GET", f"/api/catalog/apps/{ref}",
                                params={"locale": locale or default_locale()})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(item)
        return
    console.print(f"[bold]{item['title']}[/] ({item['id']}, {item['format']}) "
                  f"version {item['version']}", highlight=False)
    if item["tagline"]:
        console.print(item["tagline"], highlight=False)
    for label, value in (("Category", ", ".join(item["category"])),
                         ("Website", item["website"]), ("Author", item["author"]),
                         ("Architectures", ", ".join(item["architectures"]) or "any"),
                         ("Languages", ", ".join(item["locales"]))):
        if value:
            console.print(f"{label}: {value}", highlight=False)
    if item["main"]:
        main = item["main"]
        console.print(f"Web UI: service {main['service']}, port {main['port']}{main['path']}")
    if item["description"]:
        console.print()
        console.print(item["description"].strip(), highlight=False)
    if item["parameters"]:
        console.print("\nParameters:")
        for param in item["parameters"]:
            default = f" (default {param['default']})" if param["default"] is not None else ""
            required = " required" if param["required"] else ""
            console.print(f"  {param['name']}: {param['type']}{required}{default}",
                          highlight=False)
    if item["installable"]:
        console.print("\n[green]Installable[/]: stackhub app install " + item["id"])
    else:
        console.print("\n[red]Not installable:[/]")
        for problem in item["problems"]:
            console.print(f"  - {problem}", highlight=False)
    for note in item["notes"]:
        console.print(f"note: {note}", style="yellow", highlight=False)
