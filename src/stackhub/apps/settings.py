"""Settings after install: read the values, preview a change (compose diff, services to
recreate), apply it as one `reconfigure` operation, keep a revision history, go back to one.

A change is rendered exactly as an install would be (parameters checked, ports allocated,
`compose config`), before anything stops: an invalid value is refused with nothing touched.
Applying writes the project files and the record, then runs `compose up`, which recreates
only the services whose resolved configuration changed (Compose compares each container's
config hash), and waits for readiness. A failure puts the previous files and record back and
starts them again. Parameters marked `init_only` in the app format are read-only after
install. `draft` and `write` are also what an update uses to apply a new definition.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from stackhub import faults, fsutil, labels
from stackhub.adapters.compose import COMPOSE_FILE, ENV_FILE, Compose, ResolvedProject
from stackhub.apps import params, risk
from stackhub.apps.flows import Flows
from stackhub.apps.models import Accepted, InstanceStatus
from stackhub.apps.planner import Plan, Planner, published_ports
from stackhub.apps.ports import PortAllocator, host_port_free
from stackhub.apps.readiness import one_shot_services
from stackhub.apps.revisions import RevisionRead, Revisions
from stackhub.catalog.models import AppDefinition, Parameter, localized
from stackhub.config import Paths
from stackhub.errors import Conflict, Invalid, RiskNotAccepted, StackHubError
from stackhub.operations.runner import OperationKind, Outcome, Run, Runner, register
from stackhub.state.instances import InstanceRecord, Records

REDACTED = "********"
VALUES_FILE = "values.json"
INIT_ONLY = ("only takes effect when the app's data is first initialised; changing it now "
             "would not change the data (reinstall with --purge to choose another)")

RECONFIGURE = register(OperationKind("reconfigure", "the settings change", None, None, None,
                                     hint="apply the settings again"))


class SettingRead(BaseModel):
    """One parameter of an installed app, with its value and whether it can be changed."""

    name: str
    type: str
    label: dict[str, str] = Field(default_factory=dict)
    help: dict[str, str] = Field(default_factory=dict)
    value: str = Field(description="The current value; secrets as ********")
    default: str | None = None
    required: bool = False
    options: list[str] = Field(default_factory=list)
    min: float | None = None
    max: float | None = None
    secret: bool = False
    editable: bool = True
    reason: str | None = Field(default=None, description="Why it is read-only, if it is")


class SettingsRead(BaseModel):
    """The settings of an instance."""

    instance: str
    app: str
    version: str
    revision: int | None = Field(default=None, description="The current revision (None: "
                                 "never changed since install)")
    parameters: list[SettingRead]


class SettingsChange(BaseModel):
    """New values (KEY: VALUE), or a revision to go back to; consent for new risks."""

    values: dict[str, str] = Field(default_factory=dict)
    revision: int | None = Field(default=None, ge=1)
    accept_risks: str | None = None


class ValueChange(BaseModel):
    """One changed parameter (secrets masked)."""

    name: str
    old: str
    new: str


class SettingsPreview(BaseModel):
    """What a settings change would do, computed without touching the engine."""

    instance: str
    changes: list[ValueChange]
    diff: str = Field(description="Unified diff of compose.yaml and .env (secrets masked)")
    recreate: list[str] = Field(description="Services whose containers will be recreated")
    unchanged: list[str] = Field(description="Services left running as they are")
    risks: list[risk.Risk] = Field(default_factory=list)
    digest: str = ""
    needs_consent: bool = False


@dataclass
class Draft:
    """A rendered change of an instance: the plan and the files it would write."""

    record: InstanceRecord
    plan: Plan
    compose_text: str
    env_text: str
    recreate: list[str]
    unchanged: list[str]
    diff: str
    changes: list[ValueChange]
    needs_consent: bool


def _mask(text: str, secrets: list[str]) -> str:
    for value in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


def _services(resolved: ResolvedProject) -> dict[str, str]:
    raw = resolved.raw.get("services") or {}
    return {str(k): json.dumps(v, sort_keys=True) for k, v in raw.items()}


def app_of(record: InstanceRecord) -> AppDefinition:
    """The stored definition of an instance, or Invalid if it can no longer be read."""
    try:
        return AppDefinition.model_validate(record.definition)
    except ValidationError as err:
        raise Invalid(f"the stored definition of {record.name!r} can no longer be read") from err


class InstanceSettings:
    """Read, preview and apply settings; keep revisions."""

    def __init__(self, *, paths: Paths, records: Records, planner: Planner, flows: Flows,
                 runner: Runner, compose: Compose, revisions: Revisions) -> None:
        """Keep the collaborators."""
        self.paths = paths
        self.records = records
        self.planner = planner
        self.flows = flows
        self.runner = runner
        self.compose = compose
        self.revisions = revisions

    # -- reading ------------------------------------------------------------------------------
    def read(self, name: str) -> SettingsRead:
        """Return the instance's parameters and values, secrets hidden."""
        record = self.records.get(name)
        app = app_of(record)
        latest = self.revisions.latest(name)
        hidden = set(record.secret_names)
        items = []
        for param in app.parameters:
            value = record.parameters.get(param.name, "")
            items.append(SettingRead(
                name=param.name, type=param.type.value, label=dict(param.label),
                help=dict(param.help), value=REDACTED if param.name in hidden and value else value,
                default=None if param.default is None else str(param.default),
                required=param.required, options=[o.value for o in param.options],
                min=param.min, max=param.max, secret=param.name in hidden,
                editable=not param.init_only, reason=INIT_ONLY if param.init_only else None))
        items += self._exported(name)
        return SettingsRead(instance=name, app=record.app_ref, version=record.version,
                            revision=latest.number if latest else None, parameters=items)

    def _exported(self, name: str) -> list[SettingRead]:
        """The values the instance's store scripts exported (apps/scripts.py), read-only."""
        saved = self.paths.instance_dir(name) / "exports.json"
        try:
            data = json.loads(saved.read_text()) if saved.is_file() else {}
        except (OSError, ValueError):
            return []
        items = []
        for key, value in sorted(data.items()) if isinstance(data, dict) else []:
            secret = any(w in key.upper() for w in ("PASS", "SECRET", "KEY", "TOKEN", "SEED"))
            items.append(SettingRead(
                name=str(key), type="text", value=REDACTED if secret and value else str(value),
                secret=secret, editable=False,
                reason="exported by the app's store script (exports.sh), run at each install "
                       "and start"))
        return items

    def history(self, name: str) -> list[RevisionRead]:
        """Every kept revision, newest first, secrets hidden."""
        record = self.records.get(name)
        hidden = set(record.secret_names)
        found = self.revisions.all(name)
        last = found[-1].number if found else None
        return [RevisionRead(number=r.number, reason=r.reason, version=r.version,
                             parameters={k: REDACTED if k in hidden and v else v
                                         for k, v in r.parameters.items()},
                             snapshot=r.snapshot, created_at=r.created_at,
                             current=r.number == last) for r in reversed(found)]

    # -- drafting -----------------------------------------------------------------------------
    def _check_given(self, app: AppDefinition, record: InstanceRecord,
                     given: dict[str, str]) -> None:
        by_name = {p.name: p for p in app.parameters}
        unknown = sorted(set(given) - set(by_name))
        if unknown:
            raise Invalid(f"unknown parameter(s): {', '.join(unknown)}; {record.name} takes "
                          f"{', '.join(sorted(by_name)) or 'no parameters'}")
        for key, value in given.items():
            param: Parameter = by_name[key]
            if param.init_only and value != record.parameters.get(key, ""):
                label = localized(param.label) or key
                raise Invalid(f"parameter {key} ({label}) is read-only after install: it "
                              f"{INIT_ONLY}", details={"parameter": key, "reason": "init_only"})

    async def draft(self, name: str, app: AppDefinition, given: dict[str, str],
                    kept: dict[str, str]) -> Draft:
        """Render `app` for the instance with `given` over `kept` values; compare with now.

        Ports the instance holds stay its own; new ones must be free. Nothing is written.
        """
        record = self.records.get(name)
        own = {p.host_port for p in record.ports}
        held = await asyncio.to_thread(self.planner._held_ports, name)

        def free(port: int, protocol: str) -> bool:
            return port in own or host_port_free(port, protocol)

        allocator = PortAllocator(held, free=free)
        values = params.resolve(app.parameters, given, kept, pick_port=allocator.pick)
        plan = await asyncio.to_thread(self.planner._replan, name, app, values)
        project = labels.project_name(name)
        folder = self.paths.instance_dir(name)
        # the current project resolves beside the draft (two compose runs at once, not in turn)
        running = asyncio.ensure_future(self.compose.config(project, folder)) \
            if (folder / COMPOSE_FILE).is_file() else None
        try:
            with tempfile.TemporaryDirectory(prefix="stackhub-settings-") as tmp:
                plan.write(Path(tmp))
                plan.resolved = await self.compose.config(project, Path(tmp))
            current = await running if running is not None else None
        except BaseException:
            if running is not None:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
            raise
        plan.ports = published_ports(plan.resolved)
        allocator.check_published((p.host_port, p.protocol, p.service) for p in plan.ports)
        plan.secrets = params.secret_names(app.parameters)
        data_dir = self.paths.instance_data(name)
        plan.risks = risk.analyse(plan.resolved, allowed_roots=[str(data_dir)],
                                  protected_roots=[str(self.paths.root)])
        secret_values = [values[n] for n in plan.secrets if values.get(n)] + \
            [record.parameters[n] for n in record.secret_names if record.parameters.get(n)]
        plan.digest = risk.digest(plan.resolved, secret_values)
        old_compose = old_env = ""
        before: dict[str, str] = {}
        old_risks: list[risk.Risk] = []
        if current is not None:
            old_compose = (folder / COMPOSE_FILE).read_text()
            old_env = (folder / ENV_FILE).read_text() if (folder / ENV_FILE).is_file() else ""
            before = _services(current)
            old_risks = risk.analyse(current, allowed_roots=[str(data_dir)],
                                     protected_roots=[str(self.paths.root)])
        after = _services(plan.resolved)
        recreate = sorted(s for s, text in after.items() if before.get(s) != text)
        unchanged = sorted(s for s, text in after.items() if before.get(s) == text)
        compose_text, env_text = plan.compose_text(), plan.env_text()
        diff = "".join([
            *difflib.unified_diff(old_compose.splitlines(keepends=True),
                                  compose_text.splitlines(keepends=True),
                                  f"a/{COMPOSE_FILE}", f"b/{COMPOSE_FILE}"),
            *difflib.unified_diff(old_env.splitlines(keepends=True),
                                  env_text.splitlines(keepends=True),
                                  f"a/{ENV_FILE}", f"b/{ENV_FILE}")])
        hidden = set(record.secret_names) | plan.secrets
        changes = [ValueChange(name=k, old=REDACTED if k in hidden else record.parameters.get(
            k, ""), new=REDACTED if k in hidden else v) for k, v in values.items()
            if record.parameters.get(k) != v]
        new_risks = {r.model_dump_json() for r in plan.risks} - \
            {r.model_dump_json() for r in old_risks}
        return Draft(record=record, plan=plan, compose_text=compose_text, env_text=env_text,
                     recreate=recreate, unchanged=unchanged, diff=_mask(diff, secret_values),
                     changes=changes, needs_consent=bool(new_risks))

    async def _draft_change(self, name: str, change: SettingsChange) -> Draft:
        record = self.records.get(name)
        if change.revision is not None:
            if change.values:
                raise Invalid("give either values or a revision, not both")
            if change.revision == 1 and self.revisions.latest(name) is None:
                return await self.draft(name, app_of(record), {}, record.parameters)
            revision = self.revisions.get(name, change.revision)
            app = AppDefinition.model_validate(revision.definition)
            return await self.draft(name, app, {}, revision.parameters)
        app = app_of(record)
        self._check_given(app, record, change.values)
        return await self.draft(name, app, change.values, record.parameters)

    @staticmethod
    def preview_of(name: str, draft: Draft) -> SettingsPreview:
        """The API view of a draft."""
        return SettingsPreview(instance=name, changes=draft.changes, diff=draft.diff,
                               recreate=draft.recreate, unchanged=draft.unchanged,
                               risks=draft.plan.risks, digest=draft.plan.digest,
                               needs_consent=draft.needs_consent)

    async def preview(self, name: str, change: SettingsChange) -> SettingsPreview:
        """Say what a change would do; nothing is written or stopped."""
        return self.preview_of(name, await self._draft_change(name, change))

    # -- applying -----------------------------------------------------------------------------
    def _claimable(self, name: str) -> InstanceRecord:
        record = self.records.get(name)
        if record.status in (InstanceStatus.INSTALLING, InstanceStatus.REMOVING) or \
                self.runner.busy(name):
            raise Conflict(f"instance {name!r} is busy; wait for its operation to finish")
        return record

    async def apply(self, name: str, change: SettingsChange) -> Accepted:
        """Check the change completely, then start the `reconfigure` operation."""
        self._claimable(name)
        await self.runner.ensure_engine(RECONFIGURE)
        draft = await self._draft_change(name, change)
        if draft.needs_consent and change.accept_risks != draft.plan.digest:
            raise RiskNotAccepted(
                "the new settings add risky options; an admin must accept them by digest",
                details={"digest": draft.plan.digest,
                         "risks": [r.model_dump() for r in draft.plan.risks]})
        self._claimable(name)
        reason = f"revert to {change.revision}" if change.revision is not None else "settings"
        op = self.runner.begin(RECONFIGURE, name)
        self.runner.start(op, lambda run: self.reconfigure(run, draft, reason))
        return Accepted(operation=op, instance=name, app=draft.record.app_ref,
                        version=draft.plan.app.version)

    def new_record(self, draft: Draft) -> InstanceRecord:
        """The instance record a draft would leave (definition, values, ports)."""
        app = draft.plan.app
        old = draft.record
        return InstanceRecord(
            name=old.name, app_ref=old.app_ref, store=old.store, format=app.format,
            version=app.version, revision=app.revision, status=old.status,
            main_service=app.main.service if app.main else None,
            main_port=app.main.port if app.main else None,
            main_path=app.main.path if app.main else None, ports=draft.plan.ports,
            parameters=draft.plan.values, secret_names=sorted(draft.plan.secrets),
            definition=app.model_dump(mode="json"), error=None,
            update_available=old.update_available, created_at=old.created_at,
            updated_at=old.updated_at)

    def write(self, draft: Draft) -> None:
        """Write a draft's project files, values and record (the old ones are in the draft)."""
        name = draft.record.name
        folder = self.paths.instance_dir(name)
        try:
            fsutil.write_atomic(folder / COMPOSE_FILE, draft.compose_text, mode=0o600)
            fsutil.write_atomic(folder / ENV_FILE, draft.env_text, mode=0o600)
            self.flows.save_values(name, draft.plan.values)
            data = self.paths.instance_data(name)
            data.mkdir(parents=True, exist_ok=True)
            draft.plan.write_app_files(data)
            draft.plan.make_data_dirs(data)
        except OSError as err:
            raise fsutil.write_error(err, "the project files") from err
        self.records.replace(self.new_record(draft))

    async def put_back(self, record: InstanceRecord, files: dict[str, str]) -> None:
        """Write back an instance's earlier files and record, and start it with them."""
        folder = self.paths.instance_dir(record.name)
        for file, text in files.items():
            fsutil.write_atomic(folder / file, text, mode=0o600)
        self.records.replace(record)
        await self.flows._up(record.name, self.paths.instance_dir(record.name))

    def files_of(self, name: str) -> dict[str, str]:
        """The instance's current project files (to put back after a failed change)."""
        folder = self.paths.instance_dir(name)
        return {f: (folder / f).read_text() for f in (COMPOSE_FILE, ENV_FILE, VALUES_FILE)
                if (folder / f).is_file()}

    async def start_and_wait(self, run: Run, name: str) -> None:
        """Compose up (only changed services are recreated), then wait until ready."""
        folder = self.paths.instance_dir(name)
        await self.flows._up(name, folder)
        await self.wait(run, name)

    async def wait(self, run: Run, name: str) -> None:
        """Wait until the instance's containers are ready (as an install does)."""
        compose: dict[str, Any] = self.flows._project(self.paths.instance_dir(name))
        await self.flows._wait_ready(run, one_shot_services(compose))

    async def reconfigure(self, run: Run, draft: Draft, reason: str) -> Outcome:
        """Write the new settings and recreate what changed; on failure put the old back."""
        name = run.op.instance
        self.revisions.ensure_first(draft.record)
        files = self.files_of(name)
        run.step("write", 10.0)
        self.write(draft)
        await faults.checkpoint("settings-written")
        try:
            run.step("apply", 40.0, engine=True)
            run.emit("progress", recreate=draft.recreate)
            await self.start_and_wait(run, name)
        except StackHubError as err:
            run.step("put-back", 80.0, engine=True)
            try:
                await self.put_back(draft.record, files)
            except StackHubError as again:
                raise StackHubError(f"{err.message}; putting the previous settings back "
                                    f"failed too: {again.message}") from err
            err.message = f"{err.message}; the previous settings were put back"
            raise
        self.revisions.add(self.records.get(name), reason=reason)
        await asyncio.to_thread(self.flows.status.refresh)
        return InstanceStatus.RUNNING
