"""Print results for humans (rich) or scripts (JSON), and errors the same way."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from stackhub.cli.client import Client, ClientError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status
    from rich.table import Table


class LazyConsole:
    """A rich Console made on first use.

    rich takes ~40 ms to import on a small machine; an install imports it only once its
    request is on its way, while the server works (docs/performance.md).
    """

    def __init__(self, *, stderr: bool = False) -> None:
        """Remember which stream to print to."""
        self.stderr = stderr
        self._console: Console | None = None

    @property
    def rich(self) -> Console:
        """The real console (made now if needed)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self.stderr, soft_wrap=True)
        return self._console

    def print(self, *objects: Any, **options: Any) -> None:
        """Print like rich's Console.print."""
        self.rich.print(*objects, **options)

    def status(self, message: str) -> Status:
        """Show a spinner with `message` while a `with` block runs."""
        return self.rich.status(message)


console = LazyConsole()
err_console = LazyConsole(stderr=True)


def escape(text: str) -> str:
    """Escape rich markup in `text`."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def table(*columns: str) -> Table:
    """Return a rich table with these column headers (rich.table loads only when needed)."""
    from rich.table import Table

    return Table(*columns)


def print_columns(columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Print rows as plain aligned columns (like `docker ps`), never truncated.

    For long listings: rich's table measures and wraps every cell (0.3 s of CPU for 250 rows).
    """
    widths = [max([len(column), *(len(row[i]) for row in rows)])
              for i, column in enumerate(columns)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             .rstrip() for row in [columns, *rows]]
    sys.stdout.write("\n".join(lines) + "\n")


def emit_json(data: Any) -> None:
    """Print data as JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def fail(err: ClientError, *, as_json: bool = False) -> NoReturn:
    """Report an API or client error and exit non-zero."""
    if as_json:
        emit_json({"error": {"code": err.code, "message": err.message, "details": err.details}})
    else:
        err_console.print(f"[bold red]Error:[/] {escape(err.message)}", highlight=False)
        risks = err.details.get("risks") if err.details else None
        if risks:
            for item in risks:
                line = f"  - [{item['severity']}] {item['service']}: {item['detail']}"
                err_console.print(escape(line), highlight=False)
    raise SystemExit(2 if err.code == "usage" else 1)


def call_or_fail(client: Client, method: str, path: str, *, as_json: bool = False,
                 **kwargs: Any) -> Any:
    """Call the API with `client` and return its JSON; on an error report it (`fail`) and exit."""
    try:
        return client.request(method, path, **kwargs)
    except ClientError as err:
        fail(err, as_json=as_json)
