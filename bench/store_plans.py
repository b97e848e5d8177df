"""Plan every installable app of the real stores into a project `docker compose config` accepts.

Run: ``.venv/bin/python bench/store_plans.py --casaos DIR --umbrel DIR --runtipi DIR`` with
local clones of the three store repositories (as bench/stores.py; any of the three may be left
out; needs the Docker CLI with Compose, not a running app). Each store is added as a local
store and synced; every installable app is planned by StackHub's own planner (parameters,
ports, render, ``docker compose config``, risks) under a throwaway data root. An app with
dependencies is planned after them, against their plans' values as if installed (its imported
variables, link networks and data folders). Required parameters without a default (what the
admin types: an e-mail, a user name) get plausible values. Prints per store how many
installable apps plan into a valid project and why the others do not. Target (issue 16): at
least 98%.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from stackhub.adapters.compose import ComposeCli  # noqa: E402
from stackhub.adapters.engine import DockerEngine  # noqa: E402
from stackhub.apps.models import CatalogSource, PlanRequest  # noqa: E402
from stackhub.apps.planner import Planner  # noqa: E402
from stackhub.catalog.models import AppDefinition, Parameter, ParameterType  # noqa: E402
from stackhub.catalog.service import Catalog  # noqa: E402
from stackhub.config import Paths  # noqa: E402
from stackhub.errors import StackHubError  # noqa: E402
from stackhub.state.db import Database  # noqa: E402
from stackhub.state.instances import InstanceRecord, Records  # noqa: E402

TARGET_VALID = 0.98


class PlannedRecords(Records):
    """Instance rows as the bench pretends them: the dependencies planned so far."""

    def __init__(self, db: Database) -> None:
        """Start with no instance."""
        super().__init__(db)
        self.fake: list[InstanceRecord] = []

    def all(self) -> list[InstanceRecord]:
        """Return the pretended instances."""
        return list(self.fake)

    def find(self, name: str) -> InstanceRecord | None:
        """Return a pretended instance by name."""
        return next((r for r in self.fake if r.name == name), None)


def record(name: str, app: AppDefinition) -> InstanceRecord:
    """Pretend an instance of `app` named `name` is installed."""
    return InstanceRecord(
        name=name, app_ref=app.ref, store=app.store, format=str(app.format), version=app.version,
        revision=None, status="running", main_service=None, main_port=None, main_path=None,
        ports=[], parameters={}, secret_names=[], definition=app.model_dump(mode="json"),
        error=None, update_available=None, created_at="", updated_at="")


def depth(app: AppDefinition, by_id: dict[str, AppDefinition], seen: tuple[str, ...] = ()) -> int:
    """Return how deep an app's dependencies go (0: none)."""
    if app.id in seen:
        return 0
    deps = [by_id[d] for d in app.dependencies if d in by_id]
    return 1 + max((depth(d, by_id, (*seen, app.id)) for d in deps), default=-1)


def sample(param: Parameter) -> str | None:
    """Return what an admin would type for a required parameter without a default, or None.

    Values a person must give (an e-mail, a user name, a token) are not a defect of the plan:
    the bench gives plausible ones (the first option, the minimum, a long enough text).
    """
    if not param.required or param.default not in (None, "") or param.type in (
            ParameterType.SECRET, ParameterType.PORT):
        return None
    if param.options:
        return str(param.options[0].value)
    by_type = {ParameterType.EMAIL: "admin@example.com", ParameterType.URL: "http://example.com",
               ParameterType.HOST: "example.com", ParameterType.BOOLEAN: "true",
               ParameterType.PATH: "/srv/bench", ParameterType.PASSWORD: "Bench-passw0rd-1234"}
    if param.type is ParameterType.NUMBER:
        return str(int(param.min) if param.min is not None else 1)
    text = by_type.get(param.type, "bench")
    if param.min is not None and param.type is not ParameterType.NUMBER:
        text = text + "x" * max(0, int(param.min) - len(text))
    if param.regex:  # what a person would type to satisfy the app's own pattern
        for candidate in (text, "admin@example.com", "@daily", "base64:" + "A" * 43 + "=",
                          "a" * 32, "0123456789abcdef" * 4, "1"):
            try:
                if re.fullmatch(param.regex, candidate):
                    return candidate
            except re.error:
                break
    return text


def reason(text: str) -> str:
    """Shorten an error to its kind for counting."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "…", text.splitlines()[0] if text else text)
    return re.sub(r"\b[\w.-]*\d[\w.-]*\b", "…", text)[:100]


async def plan_store(planner: Planner, records: PlannedRecords, paths: Paths,
                     apps: list[AppDefinition], limit: int) -> tuple[int, list[str]]:
    """Plan the installable apps of one store, dependencies first; return (valid, failures)."""
    by_id = {a.id: a for a in apps}
    todo = sorted((a for a in apps if a.installable), key=lambda a: (depth(a, by_id), a.id))
    todo = todo[:limit] if limit else todo
    valid = 0
    failures: list[str] = []
    for index, app in enumerate(todo):
        name = re.sub(r"[^a-z0-9-]+", "-", f"b{index}-{app.id}".lower())[:40].rstrip("-")
        values = {p.name: v for p in app.parameters if (v := sample(p)) is not None}
        request = PlanRequest(source=CatalogSource(ref=app.ref), name=name, values=values)
        try:
            plan = await planner.plan(request)
        except StackHubError as err:
            failures.append(f"{app.id}: {err.message}")
            continue
        valid += 1
        if any(app.id in other.dependencies for other in apps):
            plan.write(paths.instance_dir(name))
            records.fake.append(record(name, app))
    return valid, failures


def main() -> int:
    """Sync the stores and plan their installable apps; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("casaos", "umbrel", "runtipi"):
        parser.add_argument(f"--{name}", type=Path, help=f"{name} store clone")
    parser.add_argument("--limit", type=int, default=0, help="plan at most N apps per store")
    args = parser.parse_args()
    os.environ["STACKHUB_OFFICIAL_STORE"] = "/nonexistent"
    stores = {n: p for n, p in (("casaos", args.casaos), ("umbrel", args.umbrel),
                                ("runtipi", args.runtipi)) if p is not None}
    ok = True
    with tempfile.TemporaryDirectory(prefix="stackhub-bench-plans-") as tmp:
        paths = Paths(Path(tmp))
        db = Database(paths.root / "stackhub.db")
        catalog = Catalog(db, paths.root / "stores", arch="amd64")
        records = PlannedRecords(db)
        planner = Planner(paths=paths, records=records, catalog=catalog, compose=ComposeCli(),
                          engine=DockerEngine(), tz="UTC")
        for name, path in stores.items():
            catalog.add(name, str(path.resolve()), local=True, max_bytes=1024 * 1024 * 1024)
            catalog.sync_store(name)
            apps = [catalog.get(a.id) for a in catalog.list() if a.store == name]
            started = time.perf_counter()
            valid, failures = asyncio.run(plan_store(planner, records, paths, apps, args.limit))
            total = valid + len(failures)
            share = valid / total if total else 0.0
            ok &= share >= TARGET_VALID
            print(f"{name}: {valid} of {total} installable apps plan into a valid project "
                  f"({share:.1%}; target {TARGET_VALID:.0%}) in "
                  f"{time.perf_counter() - started:.0f} s")
            counts = collections.Counter(reason(f.partition(": ")[2]) for f in failures)
            for text, count in counts.most_common(8):
                print(f"    {count:4d}  {text}")
            for failure in failures[:20]:
                print(f"      - {failure[:200]}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
