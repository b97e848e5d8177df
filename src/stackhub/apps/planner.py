"""Plan an install: resolve parameters, allocate ports, render, validate and analyse risk."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from stackhub import fsutil, labels, yamlsafe
from stackhub.adapters.compose import COMPOSE_FILE, ENV_FILE, Compose, ResolvedProject
from stackhub.adapters.engine import Engine
from stackhub.apps import deps, params, risk
from stackhub.apps.models import (
    AppDirSource,
    CatalogSource,
    ComposeSource,
    PlanRead,
    PlanRequest,
    PortMapping,
    check_name,
    default_name,
)
from stackhub.apps.ports import PortAllocator
from stackhub.apps.render import Rendered, env_file_text, render
from stackhub.apps.subnets import SubnetAllocator, Subnets
from stackhub.catalog.models import AppDefinition, WebEntry
from stackhub.catalog.service import Catalog
from stackhub.config import Paths
from stackhub.errors import AlreadyExists, EngineUnavailable, Invalid
from stackhub.platform import platform_env, substitute
from stackhub.state.instances import Records


@dataclass
class Plan:
    """Everything an install needs, computed without changing the engine."""

    app: AppDefinition
    instance: str
    values: dict[str, str]
    rendered: Rendered
    resolved: ResolvedProject
    ports: list[PortMapping]
    risks: list[risk.Risk]
    digest: str
    secrets: set[str] = field(default_factory=set)
    subnets: Subnets = field(default_factory=dict)
    reuses_data: bool = False
    dependencies: dict[str, str] = field(default_factory=dict)

    @property
    def images(self) -> list[str]:
        """Return the images of every service, in order, without repeats."""
        seen: list[str] = []
        for service in self.resolved.services.values():
            image = service.image
            if image and image not in seen:
                seen.append(image)
        return seen

    def compose_text(self) -> str:
        """Return the compose file as written to disk."""
        return yamlsafe.dump(self.rendered.compose)

    def env_text(self) -> str:
        """Return the .env file as written to disk."""
        return env_file_text(self.rendered.env)

    def urls(self, host: str) -> list[str]:
        """Return the URLs of the main web entry on `host`."""
        return entry_urls(self.app.main, self.ports, host)

    def read(self, host: str) -> PlanRead:
        """Return the API view of this plan."""
        return PlanRead(instance=self.instance, app=self.app.ref, format=self.app.format,
                        version=self.app.version, project=labels.project_name(self.instance),
                        images=self.images, ports=self.ports, urls=self.urls(host),
                        risks=self.risks, digest=self.digest,
                        notes=self.app.notes + self.rendered.notes, problems=self.app.problems,
                        compose_file=self.compose_text(), env_file=self.env_text(),
                        values=self.values, subnets=self.subnets,
                        reuses_data=self.reuses_data, dependencies=self.dependencies)

    def write(self, folder: Path) -> None:
        """Write the project files (compose file and 0600 env file) into `folder`."""
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        fsutil.write_atomic(folder / COMPOSE_FILE, self.compose_text(), mode=0o600)
        fsutil.write_atomic(folder / ENV_FILE, self.env_text(), mode=0o600)

    def write_app_files(self, data_dir: Path) -> list[str]:
        """Write the app's shipped files into a new instance's data folder; return their paths.

        Existing files are kept (a reinstall under the same name keeps the user's data).
        Templates get their ``${NAME}`` references filled from the instance's env values.
        Written before ``make_data_dirs``, so a mounted file is not created as a folder.
        """
        owner = self._owner()
        written: list[str] = []
        for item in self.app.files:
            text = (substitute(item.content, self.rendered.env, syntax="envsubst") if item.template
                    else item.content)
            # 0644 like Umbrel's own files: the app's user may be anyone (see store-formats.md)
            if fsutil.create_inside(data_dir, item.path, text.encode("utf-8"), mode=0o644,
                                    owner=owner):
                written.append(item.path)
        return written

    def _owner(self) -> tuple[int, int]:
        return int(self.rendered.env.get("PUID", "1000")), int(self.rendered.env.get("PGID",
                                                                                     "1000"))

    def make_data_dirs(self, data_dir: Path) -> None:
        """Create bind folders under the data dir, owned by PUID:PGID, before the engine does.

        Docker would create missing bind sources owned by root, which images running as a
        fixed unprivileged user cannot write to. Docker also follows links in bind sources, so
        a link on the way (left in a kept data folder) is refused rather than mounted.
        """
        owner = self._owner()
        for service in self.resolved.services.values():
            for volume in service.volumes:
                if volume.type != "bind" or not volume.source:
                    continue
                path = Path(os.path.normpath(volume.source))
                if data_dir not in path.parents:
                    continue
                relative = path.relative_to(data_dir).as_posix()
                folders = relative.rpartition("/")[0]
                if folders:
                    fsutil.make_folders_inside(data_dir, folders, owner=owner)
                try:
                    info = path.lstat()
                except FileNotFoundError:
                    fsutil.make_folders_inside(data_dir, relative, owner=owner)
                    continue
                if stat.S_ISLNK(info.st_mode):
                    raise Invalid(f"{path} is a link; StackHub does not mount through links in "
                                  "data folders - remove it, or remove the instance with "
                                  "--purge first")


def entry_urls(main: WebEntry | None, ports: list[PortMapping], host: str) -> list[str]:
    """Return http(s) URLs for an app's main web entry."""
    if main is None:
        return []
    return [f"{main.scheme}://{host}:{p.host_port}{main.path}" for p in ports
            if p.service == main.service and p.container_port == main.port
            and p.protocol == "tcp"]


def published_ports(resolved: ResolvedProject) -> list[PortMapping]:
    """Extract published host ports from a resolved compose model."""
    found: list[PortMapping] = []
    for service_name, service in resolved.services.items():
        for port in service.ports:
            published = port.published or ""
            if not published:
                continue
            if not published.isdigit():
                raise Invalid(f"service {service_name}: published port {published!r} must be "
                              "a single port number")
            found.append(PortMapping(service=service_name, host_port=int(published),
                                     container_port=port.target, protocol=port.protocol))
    return found


class Planner:
    """Turn a plan request into a Plan, reading the catalog, records and host ports."""

    def __init__(self, *, paths: Paths, records: Records, catalog: Catalog, compose: Compose,
                 engine: Engine, tz: str, install: str | None = None,
                 subnets: SubnetAllocator | None = None) -> None:
        """Keep the collaborators a plan needs (`subnets`: None leaves networks as written)."""
        self.subnets = subnets
        self.paths = paths
        self.records = records
        self.catalog = catalog
        self.compose = compose
        self.engine = engine
        self.tz = tz
        self.install = install

    def app_for(self, request: PlanRequest) -> AppDefinition:
        """Read the app definition a request names."""
        source = request.source
        if isinstance(source, CatalogSource):
            return self.catalog.get(source.ref)
        if isinstance(source, ComposeSource):
            return self.catalog.read_compose(source.compose, name_hint=request.name)
        if isinstance(source, AppDirSource):
            return self.catalog.read_files(source.manifest, source.compose)
        raise Invalid("unknown source kind")

    def _held_ports(self, instance: str) -> dict[int, str]:
        held = self.records.held_ports(exclude=instance)
        project = labels.project_name(instance)
        try:
            ours = {c.id for c in self.engine.containers()}
            for container in self.engine.containers(managed_only=False):
                if container.project == project and container.id not in ours:
                    raise AlreadyExists(f"a Compose project named {project!r} that StackHub "
                                        "does not manage already exists on this engine; "
                                        "choose another instance name")
                if container.instance == instance:
                    continue
                for port in container.ports:
                    held.setdefault(port.host_port, f"container {container.name}")
        except EngineUnavailable:
            pass  # planning works without an engine; the host check still applies
        return held

    async def plan(self, request: PlanRequest, *, kept: dict[str, str] | None = None,
                   replacing: bool = False, hold: bool = False,
                   app: AppDefinition | None = None) -> Plan:
        """Compute a plan; `kept` carries values of an earlier install of the same name.

        `hold` reserves the plan's subnets for its install (commit or release them after);
        `app` is a stored definition to plan instead of the request's source (restore as new).
        """
        app = self.app_for(request) if app is None else app
        if app.problems:
            raise Invalid(f"{app.ref} cannot be installed: " + "; ".join(app.problems))
        instance = check_name(request.name or default_name(app.id))
        if not replacing and self.records.find(instance) is not None:
            raise AlreadyExists(f"an instance named {instance!r} already exists")
        providers = deps.providers(app, self.records.all(), exclude=instance)
        if kept is None:
            kept = self.kept_values(instance)
        allocator = PortAllocator(self._held_ports(instance))
        values = params.resolve(app.parameters, request.values, kept, pick_port=allocator.pick)
        data_dir = self.paths.instance_data(instance)
        platform = platform_env(instance=instance, app_id=app.id, data_dir=data_dir, tz=self.tz)
        rendered = render(app, instance=instance, values=values, platform=platform,
                          data_dir=data_dir, install=self.install)
        self._with_exports(instance, rendered, values, platform)
        dep_roots = deps.wire(app, rendered, providers, paths=self.paths, values=values,
                              platform=platform)
        project = labels.project_name(instance)
        with tempfile.TemporaryDirectory(prefix="stackhub-plan-") as tmp:
            draft = Plan(app=app, instance=instance, values=values, rendered=rendered,
                         resolved=ResolvedProject(), ports=[], risks=[], digest="")
            draft.write(Path(tmp))
            resolved = await self.compose.config(project, Path(tmp))
        ports = published_ports(resolved)
        allocator.check_published((p.host_port, p.protocol, p.service) for p in ports)
        secret_names = params.secret_names(app.parameters)
        risks = risk.analyse(resolved, allowed_roots=[str(data_dir), *dep_roots],
                             protected_roots=[str(self.paths.root)],
                             allowed_networks=frozenset(deps.link_network(p)
                                                        for p in providers.values()))
        digest = risk.digest(resolved, [values[n] for n in secret_names if values.get(n)])
        subnets = self._subnets(instance, rendered, hold=hold)  # last: nothing raises after
        return Plan(app=app, instance=instance, values=values, rendered=rendered,
                    resolved=resolved, ports=ports, risks=risks, digest=digest,
                    secrets=secret_names, subnets=subnets,
                    reuses_data=not replacing and data_dir.is_dir(),
                    dependencies={d: p.name for d, p in providers.items()})

    def keep_subnets(self, conn: sqlite3.Connection, plan: Plan) -> None:
        """Store a held plan's subnets in its install's transaction (the instance row's)."""
        if self.subnets is not None and plan.subnets:
            self.subnets.commit(conn, plan.instance, plan.subnets)

    def _subnets(self, instance: str, rendered: Rendered, *, hold: bool = False,
                 save: bool = False) -> Subnets:
        """Give the rendered project's networks their subnets (apps/subnets.py)."""
        if self.subnets is None:
            return {}
        return self.subnets.assign(instance, rendered.compose, rendered.env, hold=hold,
                                   save=save)

    def _replan(self, instance: str, app: AppDefinition, values: dict[str, str]) -> Plan:
        """Render a stored instance again (no compose config: it was checked at install)."""
        data_dir = self.paths.instance_data(instance)
        platform = platform_env(instance=instance, app_id=app.id, data_dir=data_dir, tz=self.tz)
        rendered = render(app, instance=instance, values=values, platform=platform,
                          data_dir=data_dir, install=self.install)
        self._with_exports(instance, rendered, values, platform)
        if app.dependencies:
            deps.wire(app, rendered, deps.providers(app, self.records.all(), exclude=instance,
                                                    strict=False),
                      paths=self.paths, values=values, platform=platform)
        subnets = self._subnets(instance, rendered, save=True)
        return Plan(app=app, instance=instance, values=values, rendered=rendered,
                    resolved=ResolvedProject(), ports=[], risks=[], digest="", subnets=subnets)

    def rerender(self, instance: str, app: AppDefinition, values: dict[str, str]) -> None:
        """Write an instance's project files again from its stored definition and values."""
        self._replan(instance, app, values).write(self.paths.instance_dir(instance))

    async def restore(self, instance: str, app: AppDefinition, values: dict[str, str]) -> None:
        """Make again what an interrupted install did not get to, never writing over a file.

        The project files (if the crash came before them), the app's shipped files, and the
        bind folders, owned by PUID:PGID (else Docker would create them owned by root).
        """
        folder = self.paths.instance_dir(instance)
        plan = self._replan(instance, app, values)
        if not (folder / COMPOSE_FILE).is_file():
            plan.write(folder)
        data_dir = self.paths.instance_data(instance)
        data_dir.mkdir(parents=True, exist_ok=True)
        plan.write_app_files(data_dir)
        plan.resolved = await self.compose.config(labels.project_name(instance), folder)
        plan.make_data_dirs(data_dir)

    def _with_exports(self, instance: str, rendered: Rendered, values: dict[str, str],
                      platform: dict[str, str]) -> None:
        """Put back what the instance's store scripts exported (apps/scripts.py), so a settings
        change, update or retry that renders the project again keeps those values; never over a
        parameter or a platform value."""
        saved = self.paths.instance_dir(instance) / "exports.json"
        try:
            data = json.loads(saved.read_text()) if saved.is_file() else {}
        except (OSError, ValueError):
            return
        if not isinstance(data, dict):
            return
        for key, value in data.items():
            if isinstance(value, str) and key in rendered.env and key not in values and \
                    key not in platform:
                rendered.env[key] = value

    def kept_values(self, instance: str) -> dict[str, str]:
        """Return parameter values kept from an earlier install of this name (data kept)."""
        saved = self.paths.instance_dir(instance) / "values.json"
        if not saved.is_file():
            return {}
        data = json.loads(saved.read_text())
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
