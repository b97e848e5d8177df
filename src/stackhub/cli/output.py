"""Print results for humans (rich) or scripts (JSON), and errors the same way."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console
from rich.markup import escape

from stackhub.cli.client import ClientError

if TYPE_CHECKING:
    from rich.table import Table

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def table(*columns: str) -> Table:
    """Return a rich table with these column headers (rich.table loads only when needed)."""
    from rich.table import Table

    return Table(*columns)


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
