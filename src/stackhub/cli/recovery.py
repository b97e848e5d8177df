"""``stackhub restore-system``: bring a lost box back on a fresh install (also ``backup
restore-system``). Runs on the box itself with the server stopped; see docs/disaster-recovery.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stackhub.cli.client import Client, ClientError
from stackhub.cli.output import console, emit_json, fail

if TYPE_CHECKING:
    from stackhub.backup.kit import Kit


def restore_system_cmd(
        url: Annotated[str | None, typer.Argument(
            metavar="REPO", help="The repository's URL (a path, sftp:..., s3:..., rest:...); "
            "default: the kit's.")] = None,
        kit_file: Annotated[Path | None, typer.Option(
            "--kit", help="The recovery kit (the file the console downloads, or what `backup "
            "repo key` printed): URL, password, S3 keys or the SFTP key.")] = None,
        password_file: Annotated[Path | None, typer.Option(
            "--password-file", help="A file holding only the repository's password (instead "
            "of --kit).")] = None,
        snapshot: Annotated[str, typer.Option("--snapshot", help="A system snapshot id, or "
                                              "latest.")] = "latest",
        force: Annotated[bool, typer.Option("--force", help="Replace the state of an "
                                            "installation that has instances.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Bring StackHub back on a fresh install from REPO: users, stores, domains, settings and
    every instance (the server must be stopped).

    StackHub's own state comes back now; each instance is restored from its latest snapshot
    in REPO when the server starts next (`stackhub op list` follows them). Instances without
    a snapshot there are listed with the command that restores them.
    """
    from stackhub.adapters.restic import ResticCli
    from stackhub.backup import kit as kits
    from stackhub.backup.system import restore_system
    from stackhub.config import Paths, default_data_dir
    from stackhub.errors import StackHubError

    paths = Paths(default_data_dir())
    try:
        Client().request("GET", "/api/health")
    except ClientError:
        pass  # nothing answers: good
    else:
        fail(ClientError("a StackHub server is running on this data root: stop it first "
                         "(systemctl stop stackhub)", code="usage"), as_json=as_json)
    folder = paths.root / "backups" / "work" / f"kit-{secrets.token_hex(6)}"
    try:
        kit = _read_kit(kit_file, password_file, url)
        paths.ensure()
        repo = kits.repository(kit, folder)
        report = asyncio.run(restore_system(paths, ResticCli(), repo, ref=snapshot, force=force))
    except StackHubError as err:
        fail(ClientError(err.message, code=err.code), as_json=as_json)
    finally:
        with contextlib.suppress(OSError):
            for entry in folder.glob("*"):
                entry.unlink()
            folder.rmdir()
    if as_json:
        emit_json({"snapshot": report.snapshot, "time": report.time,
                   "instances": report.instances, "stores": report.stores,
                   "restoring": report.restoring, "by_hand": report.by_hand})
        return
    console.print(f"[green]✔[/] StackHub's state is back from {report.snapshot[:8]} "
                  f"({report.time[:19]}): {len(report.instances)} instance(s), "
                  f"{len(report.stores)} store folder(s)")
    if report.restoring:
        console.print(f"Start the server: it restores {', '.join(sorted(report.restoring))} "
                      "from their latest snapshots (follow with `stackhub op list`).")
    if report.by_hand:
        console.print("Not in this repository; once the server runs, restore each with:")
        for name, command in sorted(report.by_hand.items()):
            console.print(f"  {name}: {command}", highlight=False, markup=False)


def _read_kit(kit_file: Path | None, password_file: Path | None, url: str | None) -> Kit:
    """Return the kit from --kit, or from REPO and --password-file (Invalid otherwise)."""
    from stackhub.backup import kit as kits
    from stackhub.errors import Invalid

    def read(path: Path) -> str:
        try:
            return path.read_text()
        except OSError as err:
            raise Invalid(f"cannot read {path}: {err.strerror}") from err

    if kit_file is not None:
        found = kits.parse(read(kit_file))
        if url and url != found.url:
            found = replace(found, url=url)  # the repository moved
        if password_file is not None:
            found = replace(found, password=read(password_file).strip())
        return found
    if url is None or password_file is None:
        raise Invalid("give --kit FILE, or REPO and --password-file FILE")
    return kits.Kit(name="recovery", url=url, password=read(password_file).strip())
