"""The ``stackhub`` command: ``serve`` plus client commands per domain."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from stackhub.cli import apps, stores
from stackhub.cli import auth as auth_cli
from stackhub.cli import catalog as catalog_cli
from stackhub.config import DEFAULT_PORT, Paths, default_data_dir

cli = typer.Typer(help="StackHub: install and run self-hosted apps.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
cli.add_typer(apps.app, name="app")
cli.add_typer(stores.app, name="store")
cli.add_typer(catalog_cli.app, name="catalog")
cli.add_typer(auth_cli.app)  # login, logout, audit
cli.add_typer(auth_cli.user_app, name="user")
cli.add_typer(auth_cli.token_app, name="token")


@cli.command()
def serve(host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
          data_dir: Annotated[Path | None, typer.Option(
              "--data-dir", help="Data root (default: $STACKHUB_DATA_DIR).")] = None) -> None:
    """Run the StackHub server."""
    from stackhub.server import serve as run

    root = (data_dir or default_data_dir()).resolve()
    os.environ["STACKHUB_DATA_DIR"] = str(root)
    run(Paths(root), host=host, port=port)


def main() -> NoReturn:
    """Run the CLI, then leave without the interpreter's module teardown.

    Tearing down typer, rich and the rest takes about 15 ms, paid on every command (see
    docs/performance.md); everything that must outlive the command is flushed here first.
    """
    try:
        cli()
    except SystemExit as done:
        code: object = done.code
    else:
        code = 0
    finish(code)


def finish(code: object) -> NoReturn:
    """Flush output and logs, then end the process with `code` (SystemExit's convention)."""
    status = code if isinstance(code, int) else 0 if code is None else 1
    if not isinstance(code, int | None):
        print(code, file=sys.stderr)
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`stackhub app list | head`)
            status = status or 1
    os._exit(status)
