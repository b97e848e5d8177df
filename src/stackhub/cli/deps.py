"""Install an app's missing dependencies first (``stackhub app install --with-deps``)."""

from __future__ import annotations

from typing import Any

import typer

from stackhub.cli.client import Client, ClientError
from stackhub.cli.operations import run_operation
from stackhub.cli.output import console, escape

MAX_DEPTH = 8


def missing_of(err: ClientError) -> list[str]:
    """Return the dependencies a refused plan names as missing (none for other errors)."""
    missing = err.details.get("missing_dependencies") if isinstance(err.details, dict) else None
    return [str(m) for m in missing] if isinstance(missing, list) else []


def ensure(client: Client, request: dict[str, Any], *, with_deps: bool, interactive: bool,
           quiet: bool) -> None:
    """Plan `request`; install the dependencies it lacks first when allowed (else re-raise).

    Allowed by ``--with-deps``, or by a confirmation at a terminal. Dependencies come from
    the same store as the app and are installed under their default names, in order (a
    dependency's own dependencies first).
    """
    source = request.get("source") or {}
    try:
        client.request("POST", "/api/plans", json=request)
        return
    except ClientError as err:
        missing = missing_of(err)
        if not missing or source.get("kind") != "catalog":
            raise
        ref = str(source.get("ref", ""))
        names = ", ".join(missing)
        if not with_deps and not (interactive and typer.confirm(
                f"{ref} needs {names}, not installed. Install {names} first?", default=True)):
            raise
    store = ref.rpartition("/")[0]
    for dep in missing:
        install_one(client, f"{store}/{dep}" if store else dep, interactive=interactive,
                    quiet=quiet, depth=1)


def install_one(client: Client, ref: str, *, interactive: bool, quiet: bool,
                depth: int) -> None:
    """Install one dependency (its own missing ones first) and wait until it runs."""
    if depth > MAX_DEPTH:
        raise ClientError(f"dependencies nest deeper than {MAX_DEPTH} apps", code="invalid")
    request: dict[str, Any] = {"source": {"kind": "catalog", "ref": ref}, "values": {}}
    try:
        plan = client.request("POST", "/api/plans", json=request)
    except ClientError as err:
        missing = missing_of(err)
        if not missing:
            raise
        store = ref.rpartition("/")[0]
        for dep in missing:
            install_one(client, f"{store}/{dep}" if store else dep, interactive=interactive,
                        quiet=quiet, depth=depth + 1)
        plan = client.request("POST", "/api/plans", json=request)
    accept = None
    if plan["risks"]:
        if not (interactive and typer.confirm(f"The dependency {ref} needs risky options: "
                                              "accept them?", default=False)):
            raise ClientError(f"the dependency {ref} needs risky options; install it first "
                              f"with 'stackhub app install {ref}'", code="risk_not_accepted",
                              details={"digest": plan["digest"], "risks": plan["risks"]})
        accept = plan["digest"]
    if not quiet:
        console.print(f"Installing the dependency [bold]{escape(ref)}[/] as "
                      f"[bold]{escape(plan['instance'])}[/]")
    body = {**request, "name": plan["instance"], "accept_risks": accept}
    _, op, _ = run_operation(client, lambda: client.request("POST", "/api/instances", json=body),
                             quiet=quiet)
    if op["state"] != "succeeded":
        raise ClientError(f"installing the dependency {ref} did not succeed "
                          f"({op['state']}); the app was not installed", code="dependency_failed",
                          details={"operation": op})
