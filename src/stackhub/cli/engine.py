"""``stackhub engine ...``: the engine's images, volumes and networks (admins), removal of one,
and a prune that shows what goes before anything does."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from stackhub.cli.client import Client, ClientError
from stackhub.cli.output import console, emit_json, escape, fail, table

app = typer.Typer(help="The engine's images, volumes and networks: list, remove, prune.",
                  no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
KINDS = {"image": "images", "volume": "volumes", "network": "networks"}


def _size(value: int | None) -> str:
    if value is None:
        return "?"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return str(value)


def _users(item: dict[str, Any]) -> str:
    names = item.get("instances") or ([item["instance"]] if item.get("instance") else [])
    if item.get("orphaned"):
        return f"orphaned ({item.get('instance') or '?'})"
    if names:
        return ", ".join(names)
    return f"{item.get('containers', 0)} container(s)" if item.get("containers") else "-"


def _list(kind: str, as_json: bool) -> list[dict[str, Any]]:
    try:
        found: list[dict[str, Any]] = Client().request("GET", f"/api/system/{kind}")
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(found)
    return found


@app.command("images")
def images_cmd(as_json: JsonOpt = False) -> None:
    """List images: size, the instances using them, dangling ones."""
    found = _list("images", as_json)
    if as_json:
        return
    out = table("Image", "Id", "Size", "Used by", "")
    for image in found:
        name = ", ".join(image["tags"]) or "<none>"
        flag = "dangling" if image["dangling"] else ("in use" if image["in_use"] else "unused")
        out.add_row(escape(name), image["short_id"], _size(image["size"]),
                    escape(_users(image)), flag)
    console.print(out)


@app.command("volumes")
def volumes_cmd(as_json: JsonOpt = False) -> None:
    """List volumes: size, owner instance or orphaned."""
    found = _list("volumes", as_json)
    if as_json:
        return
    out = table("Volume", "Size", "Owner / users", "")
    for volume in found:
        out.add_row(escape(volume["name"]), _size(volume["size"]), escape(_users(volume)),
                    "in use" if volume["in_use"] else "unused")
    console.print(out)


@app.command("networks")
def networks_cmd(as_json: JsonOpt = False) -> None:
    """List networks: driver, owner instance or orphaned."""
    found = _list("networks", as_json)
    if as_json:
        return
    out = table("Network", "Id", "Driver", "Owner / users", "")
    for network in found:
        flag = ("built in" if network["builtin"] else "in use" if network["in_use"]
                else "unused")
        out.add_row(escape(network["name"]), network["short_id"], network["driver"],
                    escape(_users(network)), flag)
    console.print(out)


@app.command("rm")
def rm_cmd(kind: Annotated[str, typer.Argument(help="image, volume or network.")],
           ref: Annotated[str, typer.Argument(help="Its name, tag or id.")]) -> None:
    """Remove one image, volume or network (refused while anything uses it)."""
    try:
        if kind not in KINDS:
            raise ClientError("KIND must be image, volume or network", code="usage")
        Client().request("DELETE", f"/api/system/{KINDS[kind]}/{ref}")
    except ClientError as err:
        fail(err)
    console.print(f"Removed {kind} {escape(ref)}")


def _print_plan(plan: dict[str, Any], *, done: bool) -> None:
    if not plan["items"]:
        console.print("Nothing to prune.")
        return
    out = table("Kind", "Name", "Size", "Result" if done else "")
    for item in plan["items"]:
        result = ("removed" if item["removed"] else f"failed: {item['error']}") if done else ""
        out.add_row(item["kind"], escape(item["name"]), _size(item["size"]) if item["size"]
                    else "", escape(result))
    console.print(out)
    verb = "Returned" if done else "Would return"
    console.print(f"{verb} {_size(plan['space'])} ({len(plan['items'])} objects).")


@app.command("prune")
def prune_cmd(dry_run: Annotated[bool, typer.Option("--dry-run",
                                                    help="Only show what would go.")] = False,
              all_images: Annotated[bool, typer.Option(
                  "--all-images", help="Every unused image, not only dangling ones.")] = False,
              volumes: Annotated[bool, typer.Option(
                  "--volumes", help="Unused volumes too (their data is lost).")] = False,
              networks: Annotated[bool, typer.Option(
                  "--networks/--no-networks", help="Unused networks.")] = True,
              yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
              as_json: JsonOpt = False) -> None:
    """Remove unused images, networks (and volumes): shows the list, then asks."""
    body = {"images": True, "all_images": all_images, "volumes": volumes,
            "networks": networks, "dry_run": True}
    try:
        client = Client()
        plan: dict[str, Any] = client.request("POST", "/api/system/prune", json=body)
        if dry_run or not plan["items"]:
            if as_json:
                emit_json(plan)
            else:
                _print_plan(plan, done=False)
            return
        if not as_json:
            _print_plan(plan, done=False)
        if not yes and not typer.confirm("Remove these?", default=False):
            raise typer.Exit(1)
        only = [item["id"] for item in plan["items"]]
        plan = client.request("POST", "/api/system/prune",
                              json={**body, "dry_run": False, "only": only})
    except ClientError as err:
        fail(err, as_json=as_json)
    if as_json:
        emit_json(plan)
    else:
        _print_plan(plan, done=True)
    if any(item["error"] for item in plan["items"]):
        raise typer.Exit(1)
