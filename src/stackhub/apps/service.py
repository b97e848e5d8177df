"""Serve the apps domain: plan, install, list, lifecycle, logs and remove instances."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stackhub import faults, fsutil, labels, yamlsafe
from stackhub.adapters.compose import COMPOSE_FILE, Compose
from stackhub.apps import deps, risk
from stackhub.apps.flows import INSTALL, LIFECYCLE, REMOVE, Flows
from stackhub.apps.models import (
    Accepted,
    ComposeSource,
    ContainerRead,
    InstallRequest,
    InstanceRead,
    InstanceStatus,
    OperationPage,
    OperationRead,
    PlanRead,
    PlanRequest,
)
from stackhub.apps.planner import Plan, Planner, entry_urls
from stackhub.apps.risk import Risk
from stackhub.apps.settings import InstanceSettings
from stackhub.apps.settings_view import parameter_labels, service_settings
from stackhub.apps.status import ENGINE_UNREACHABLE, StatusCache, derive
from stackhub.apps.subnets import project_networks
from stackhub.catalog.models import AppDefinition, WebEntry
from stackhub.config import Paths
from stackhub.errors import Conflict, Invalid, RiskNotAccepted
from stackhub.operations.journal import OperationFilter
from stackhub.operations.runner import Run, Runner
from stackhub.state.instances import InstanceRecord, Records

REDACTED = "********"


class AppsService:
    """The apps domain's entry points, used by the API."""

    def __init__(self, *, paths: Paths, records: Records, planner: Planner, flows: Flows,
                 runner: Runner, compose: Compose, status: StatusCache,
                 public_host: str) -> None:
        """Keep the collaborators."""
        self.paths = paths
        self.records = records
        self.planner = planner
        self.flows = flows
        self.runner = runner
        self.compose = compose
        self.status = status
        self.public_host = public_host
        self.settings: InstanceSettings  # set by services.build (settings after install)
        self.extras: list[Callable[[Sequence[InstanceRead]], None]] = []
        """Fill fields other domains own into views, all at once (open_url, last_backup_at)."""

    async def refresh(self) -> None:
        """Reload every instance's containers from the engine (after work done outside apps)."""
        await asyncio.to_thread(self.status.refresh)

    async def up(self, name: str, *, adopt: bool = False) -> None:
        """Compose up an instance's project; a subnet another network took first is moved.

        For work done outside apps on an instance's files (a restore). `adopt`: the instance
        has no subnet rows (its record came back from a backup), so the subnets its compose
        file names become its own first (and can then be moved if taken meanwhile).
        """
        folder = self.paths.instance_dir(name)
        allocator = self.planner.subnets
        if adopt and allocator is not None and not allocator.stored(name):
            compose = yamlsafe.load_mapping((folder / COMPOSE_FILE).read_bytes(),
                                            what="instance compose file")
            found: dict[str, list[str]] = {}
            for network, spec in project_networks(compose).items():
                config = (spec.get("ipam") or {}).get("config") or []
                nets = [str(c["subnet"]) for c in config if isinstance(c, dict) and
                        c.get("subnet")]
                if nets:
                    found[network] = nets
            if found:
                with self.records.db.transaction() as conn:
                    allocator.commit(conn, name, found)
        await self.flows._up(name, folder)  # the same domain

    async def container_states(self, name: str) -> list[str]:
        """Return the engine states of an instance's containers, freshly read."""
        await self.refresh()
        return [c.state for c in self.status.containers(name)]

    async def analyse(self, name: str, folder: Path,
                      secrets: list[str]) -> tuple[list[Risk], str]:
        """Return the risky options and consent digest of project files in `folder`.

        The project is resolved by `compose config` and judged as instance `name`'s (its
        appdata folder allowed); used by restores, whose compose file comes from a snapshot.
        """
        resolved = await self.compose.config(labels.project_name(name), folder)
        risks = risk.analyse(resolved, allowed_roots=[str(self.paths.instance_data(name))],
                             protected_roots=[str(self.paths.root)])
        return risks, risk.digest(resolved, secrets)

    async def plan_copy(self, name: str, definition: dict[str, object],
                        values: dict[str, str]) -> tuple[Plan, InstanceRecord]:
        """Plan a new instance `name` of a stored app definition (a restore as a new instance).

        Values are kept (secrets included) except ports, which are picked anew; the plan holds
        its subnets (`keep_subnets` in the journal transaction, or `release_plan`). Returns the
        plan and the record to insert (status installing).
        """
        try:
            app = AppDefinition.model_validate(definition)
        except ValidationError as err:
            raise Invalid(f"the stored app definition can no longer be read ({err})") from err
        ports = {p.name for p in app.parameters if p.type == "port"}
        kept = {k: v for k, v in values.items() if k not in ports}
        request = PlanRequest(source=ComposeSource(compose=""), name=name)
        plan = await self.planner.plan(request, kept=kept, hold=True, app=app)
        record = InstanceRecord(
            name=name, app_ref=app.ref, store=app.store, format=app.format, version=app.version,
            revision=app.revision, status=InstanceStatus.INSTALLING, main_service=app.main.service
            if app.main else None, main_port=app.main.port if app.main else None,
            main_path=app.main.path if app.main else None, ports=plan.ports,
            parameters=plan.values, secret_names=sorted(plan.secrets),
            definition=app.model_dump(mode="json"), error=None, update_available=None,
            created_at="", updated_at="")
        return plan, record

    def keep_subnets(self, conn: sqlite3.Connection, plan: Plan) -> None:
        """Store a held plan's subnets in the journal transaction that inserts its record."""
        self.planner.keep_subnets(conn, plan)

    def release_plan(self, plan: Plan) -> None:
        """Give back the subnets a plan holds when it will not be installed."""
        if self.planner.subnets is not None and plan.subnets:
            self.planner.subnets.release(plan.instance, plan.subnets)

    def write_project(self, plan: Plan) -> None:
        """Write a plan's project files and values into its instance folder."""
        plan.write(self.paths.instance_dir(plan.instance))
        self.flows.save_values(plan.instance, plan.values)

    async def plan(self, request: PlanRequest) -> PlanRead:
        """Render a plan without touching the engine's state."""
        plan = await self.planner.plan(request)
        return plan.read(self.public_host)

    async def install(self, request: InstallRequest) -> Accepted:
        """Plan, check consent, journal and start an install in the background."""
        await self.runner.ensure_engine(INSTALL)
        plan = await self.planner.plan(request, hold=True)
        if plan.risks and request.accept_risks != plan.digest:
            raise RiskNotAccepted(
                f"{plan.app.ref} asks for risky options; an admin must accept them by digest",
                details={"digest": plan.digest,
                         "risks": [r.model_dump() for r in plan.risks]})
        name = plan.instance
        folder = self.paths.instance_dir(name)
        data = self.paths.instance_data(name)
        self.runner.claim(name)
        created = [d for d in (folder, data) if not d.exists()]
        record = InstanceRecord(
            name=name, app_ref=plan.app.ref, store=plan.app.store, format=plan.app.format,
            version=plan.app.version, revision=plan.app.revision,
            status=InstanceStatus.INSTALLING, main_service=plan.app.main.service
            if plan.app.main else None, main_port=plan.app.main.port if plan.app.main else None,
            main_path=plan.app.main.path if plan.app.main else None, ports=plan.ports,
            parameters=plan.values, secret_names=sorted(plan.secrets),
            definition=plan.app.model_dump(mode="json"), error=None, update_available=None,
            created_at="", updated_at="")
        def create(conn: sqlite3.Connection) -> None:
            self.records.insert(conn, record)
            self.planner.keep_subnets(conn, plan)

        op = self.runner.begin(INSTALL, name, create=create)
        await faults.checkpoint("journaled")  # tests: SIGKILL after the journal, before the files

        def write_files(_run: Run) -> None:
            try:
                plan.write(folder)
                self.flows.save_values(name, plan.values)
                data.mkdir(parents=True, exist_ok=True)
                plan.write_app_files(data)
                plan.make_data_dirs(data)
            except OSError as err:
                raise fsutil.write_error(err, "the project files") from err

        self.runner.start(op, self.flows.install, undo=self.flows.undo_install(created),
                          prepare=write_files)
        return Accepted(operation=op, instance=name, app=plan.app.ref, version=plan.app.version)

    async def retry(self, name: str) -> Accepted:
        """Run an interrupted or failed install again; every step is idempotent."""
        record = self.records.get(name)
        if record.status not in (InstanceStatus.INTERRUPTED, InstanceStatus.FAILED):
            raise Conflict(f"instance {name!r} is {record.status}; only failed or interrupted "
                           "installs can be retried")
        self.runner.claim(name)
        await self.runner.ensure_engine(INSTALL)
        try:
            app = AppDefinition.model_validate(record.definition)
        except ValidationError as err:
            raise Invalid(f"the stored definition of {name!r} can no longer be read; remove "
                          "the instance (its data is kept) and install it again") from err
        try:
            await self.planner.restore(name, app, record.parameters)
        except OSError as err:
            raise fsutil.write_error(err, "the project files") from err
        op = self.runner.begin(INSTALL, name)
        self.runner.start(op, self.flows.install)
        return Accepted(operation=op, instance=name)

    async def remove(self, name: str, *, purge: bool) -> Accepted:
        """Start removing an instance; data is kept unless `purge`."""
        record = self.records.get(name)
        if record.status == InstanceStatus.INSTALLING or self.runner.busy(name):
            raise Conflict(f"instance {name!r} is being installed or changed; wait for that to "
                           "finish (or for it to fail) before removing it")
        self._check_no_dependents(record)
        await self.runner.ensure_engine(REMOVE)
        op = self.runner.begin(REMOVE, name)
        self.runner.start(op, lambda run: self.flows.remove(run, purge=purge))
        return Accepted(operation=op, instance=name)

    def _check_no_dependents(self, record: InstanceRecord) -> None:
        """Refuse to remove the last instance of an app other instances need (naming them)."""
        app_id = record.app_ref.rsplit("/", 1)[-1]
        others = [r for r in self.records.all() if r.name != record.name]
        linked = deps.link_users(self.paths, record, others)  # joined to this very instance
        if any(r.app_ref.rsplit("/", 1)[-1] == app_id for r in others) and not linked:
            return  # another instance of the same app still serves them
        needing = sorted(set(linked) | {r.name for r in others
                                        if app_id in (r.definition.get("dependencies") or [])
                                        and not any(o.app_ref.rsplit("/", 1)[-1] == app_id
                                                    for o in others)})
        if needing:
            raise Conflict(f"{', '.join(needing)} need {app_id!r} installed: remove "
                           f"{'it' if len(needing) == 1 else 'them'} first",
                           details={"dependents": needing})

    async def lifecycle(self, name: str, verb: str) -> InstanceRead:
        """Start, stop or restart an instance and return its new state."""
        record = self.records.get(name)
        if record.status in (InstanceStatus.INSTALLING, InstanceStatus.REMOVING) or \
                self.runner.busy(name):
            raise Conflict(f"instance {name!r} is busy; wait for its operation to finish")
        await self.runner.ensure_engine(LIFECYCLE[verb])
        op = self.runner.begin(LIFECYCLE[verb], name)
        await self.runner.run(op, lambda run: self.flows.lifecycle(run, verb))
        return self.views([self.records.get(name)])[0]

    def views(self, records: Sequence[InstanceRecord]) -> list[InstanceRead]:
        """Return the API views of instances: `read` plus the other domains' fields, filled in
        once for all (only answers to clients need them; StackHub's own reads skip the work)."""
        found = [self.read(r) for r in records]
        for fill in self.extras:
            fill(found)
        return found

    def read(self, record: InstanceRecord) -> InstanceRead:
        """Return an instance's own view, secrets hidden, status from the cache (without the
        fields `extras` fill: `views` adds them)."""
        containers = self.status.containers(record.name)
        main = _main_entry(record.definition)
        hidden = set(record.secret_names)
        engine = not self.status.engine_down
        status = derive(record.status, containers, engine=engine)
        return InstanceRead(
            name=record.name, app=record.app_ref, store=record.store, format=record.format,
            version=record.version, status=status,
            status_reason=ENGINE_UNREACHABLE if status == InstanceStatus.UNKNOWN else None,
            main=main, ports=record.ports, urls=entry_urls(main, record.ports, self.public_host),
            parameters={k: REDACTED if k in hidden else v for k, v in record.parameters.items()},
            parameter_labels=parameter_labels(record.definition),
            services=service_settings(record.definition, record.secret_names),
            containers=[ContainerRead(name=c.name, service=c.service,
                                      state=c.state if engine else "unknown",
                                      health=c.health if engine else None, image=c.image)
                        for c in containers],
            error=record.error, **self._update_of(record),
            created_at=record.created_at, updated_at=record.updated_at)

    def _update_of(self, record: InstanceRecord) -> dict[str, Any]:
        """The update known for an instance: a newer store version, else a new digest."""
        if record.update_available:
            return {"update_available": True, "latest_version": record.update_available,
                    "update_kind": "version"}
        settings: InstanceSettings | None = getattr(self, "settings", None)
        found = settings.revisions.digest_update(record.name) if settings else None
        if found:
            return {"update_available": True, "latest_version": record.version,
                    "update_kind": "digest"}
        return {"update_available": False, "latest_version": None, "update_kind": None}

    def all(self) -> list[InstanceRead]:
        """Return every instance (own views: `views` for answers to clients)."""
        return [self.read(r) for r in self.records.all()]

    def get(self, name: str) -> InstanceRead:
        """Return one instance."""
        return self.read(self.records.get(name))

    def find(self, name: str) -> InstanceRead | None:
        """Return one instance, or None if there is none of that name."""
        record = self.records.find(name)
        return None if record is None else self.read(record)

    def operation(self, op_id: str) -> OperationRead:
        """Return one operation."""
        return self.runner.journal.operation(op_id)

    def operations(self, where: OperationFilter, *, limit: int = 50,
                   offset: int = 0) -> OperationPage:
        """Return one page of the operations journal, newest first."""
        return self.runner.journal.page(where, limit=limit, offset=offset)

    async def logs(self, name: str, *, tail: int | None, follow: bool) -> AsyncIterator[str]:
        """Stream an instance's logs."""
        self.records.get(name)
        async for line in self.compose.logs(labels.project_name(name),
                                            self.paths.instance_dir(name), tail=tail,
                                            follow=follow):
            yield line


def _main_entry(definition: dict[str, object]) -> WebEntry | None:
    """Read only the main web entry of a stored definition (cheap; never fails a listing)."""
    try:
        raw = definition.get("main")
        return WebEntry.model_validate(raw) if raw else None
    except ValidationError:
        return None
