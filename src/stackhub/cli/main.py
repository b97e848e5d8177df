"""The ``stackhub`` command: ``serve`` plus client commands per domain."""

from __future__ import annotations

import gc
import importlib
import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from stackhub.config import DEFAULT_PORT, Paths, default_data_dir

HELP = "StackHub: install and run self-hosted apps."
GROUPS = {  # first word -> (module, its Typer); "" holds top-level commands (login, logout...)
    "app": ("stackhub.cli.apps", "app"),
    "store": ("stackhub.cli.stores", "app"),
    "catalog": ("stackhub.cli.catalog", "app"),
    "op": ("stackhub.cli.ops", "app"),
    "domain": ("stackhub.cli.domains", "app"),
    "backup": ("stackhub.cli.backup", "app"),
    "doctor": ("stackhub.cli.doctor", "app"),
    "files": ("stackhub.cli.files", "app"),
    "engine": ("stackhub.cli.engine", "app"),
    "notifications": ("stackhub.cli.notifications", "app"),
    "top": ("stackhub.cli.top", "app"),
    "version": ("stackhub.cli.version", "app"),
    "": ("stackhub.cli.auth", "app"),
    "user": ("stackhub.cli.auth", "user_app"),
    "token": ("stackhub.cli.auth", "token_app"),
}
COMMANDS = {  # top-level commands of their own (not in a group): name -> (module, function)
    "restore-system": ("stackhub.cli.recovery", "restore_system_cmd"),
}


def command_tree(first_word: str | None = None) -> typer.Typer:
    """Build the command tree; when `first_word` names a group, only that group.

    Importing and building every group costs ~15 ms per start on a small machine, paid by
    every command (docs/performance.md). ``serve`` gets no group at all (the server process
    keeps what it imports: ~2 MB). Any other first word (``login``, ``--help``, a typo) gets
    the whole tree, so help and errors are unchanged.
    """
    tree = typer.Typer(help=HELP, no_args_is_help=True, pretty_exceptions_enable=False)
    tree.command()(serve)  # with a group beside it, typer keeps the tree a group
    if first_word == "serve":  # the server needs no client command (typer's groups: ~2 MB)
        tree.callback()(_group)  # a callback keeps it a group as well
        return tree
    only = first_word if first_word and first_word in GROUPS else None
    for name, (module, attribute) in GROUPS.items():
        if only in (None, name):
            tree.add_typer(getattr(importlib.import_module(module), attribute), name=name or None)
    for name, (module, attribute) in COMMANDS.items():
        if only is None:
            tree.command(name)(getattr(importlib.import_module(module), attribute))
    return tree


def _group() -> None:
    """StackHub: install and run self-hosted apps."""


def __getattr__(name: str) -> typer.Typer:
    """``cli``: the whole command tree (for tests and ``typer ... utils docs``)."""
    if name == "cli":
        return command_tree()
    raise AttributeError(name)


def serve(host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
          data_dir: Annotated[Path | None, typer.Option(
              "--data-dir", help="Data root (default: $STACKHUB_DATA_DIR).")] = None) -> None:
    """Run the StackHub server."""
    # no cyclic collections while start-up builds its ~190k long-lived objects (imports,
    # models, routes: ~0.1 s of CPU); server.settle_memory collects, freezes, and turns it on
    gc.disable()
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
        command_tree(sys.argv[1] if len(sys.argv) > 1 else None)()
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
