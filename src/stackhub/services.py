"""Wire StackHub's services together once per server (no global state)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from stackhub import fsutil
from stackhub.adapters.compose import Compose, ComposeCli
from stackhub.adapters.engine import DockerEngine, Engine
from stackhub.adapters.restic import ResticCli
from stackhub.adapters.volumes import VolumeCopier
from stackhub.apps.flows import Flows
from stackhub.apps.planner import Planner
from stackhub.apps.service import AppsService
from stackhub.apps.status import StatusCache
from stackhub.apps.subnets import SubnetAllocator
from stackhub.auth.admin_token import ensure_admin_token, token_digest
from stackhub.auth.service import AuthService
from stackhub.backup.flows import BackupFlows
from stackhub.backup.repos import Repositories
from stackhub.backup.service import BackupService
from stackhub.catalog.service import Catalog
from stackhub.config import Paths, subnet_pool
from stackhub.events import EventBus
from stackhub.operations.journal import Journal
from stackhub.operations.runner import Runner
from stackhub.proxy.flows import DomainFlows
from stackhub.proxy.records import DomainRecords
from stackhub.proxy.service import ProxyService
from stackhub.state.db import Database
from stackhub.state.instances import Records


def host_timezone() -> str:
    """Return the host's time zone name, or UTC."""
    if os.environ.get("TZ"):
        return os.environ["TZ"]
    tzfile = Path("/etc/timezone")
    if tzfile.is_file():
        return tzfile.read_text().strip() or "UTC"
    return "UTC"


@dataclass
class Services:
    """Every long-lived object of one server."""

    paths: Paths
    db: Database
    bus: EventBus
    engine: Engine
    compose: Compose
    catalog: Catalog
    records: Records
    status: StatusCache
    runner: Runner
    flows: Flows
    apps: AppsService
    admin_digest: str
    auth: AuthService
    proxy: ProxyService
    domains: DomainFlows
    backups: BackupService


def install_id(paths: Paths) -> str:
    """Return this data root's random installation id, creating it on first start."""
    path = paths.root / "install-id"
    if path.is_file():
        text = path.read_text().strip()
        if text:
            return text
    value = secrets.token_hex(6)
    fsutil.write_atomic(path, value + "\n", mode=0o644)
    return value


def build(paths: Paths, *, engine: Engine | None = None, compose: Compose | None = None,
          public_host: str = "localhost") -> Services:
    """Create the services for a data root."""
    paths.ensure()
    install = install_id(paths)
    db = Database(paths.db)
    bus = EventBus()
    engine = engine or DockerEngine(install=install)
    compose = compose or ComposeCli()
    catalog = Catalog(db, paths.stores)
    records = Records(db)
    status = StatusCache(engine, bus)
    runner = Runner(journal=Journal(db), bus=bus, watch=status)
    subnets = SubnetAllocator(db, engine, subnet_pool())
    flows = Flows(paths=paths, records=records, engine=engine, compose=compose, runner=runner,
                  status=status, subnets=subnets)
    planner = Planner(paths=paths, records=records, catalog=catalog, compose=compose,
                      engine=engine, tz=host_timezone(), install=install,
                      subnets=subnets)
    apps = AppsService(paths=paths, records=records, planner=planner, flows=flows,
                       runner=runner, compose=compose, status=status, public_host=public_host)
    token = ensure_admin_token(paths.admin_token)
    auth = AuthService(db=db, paths=paths)
    auth.prepare_setup()
    proxy = ProxyService(paths=paths, records=DomainRecords(db), apps=apps, runner=runner,
                         bus=bus)
    domains = DomainFlows(proxy=proxy, runner=runner)
    repos = Repositories(db, paths)
    repos.ensure_default()
    restic = ResticCli()
    backup_flows = BackupFlows(paths=paths, records=records, engine=engine, compose=compose,
                               apps=apps, runner=runner, restic=restic,
                               volumes=VolumeCopier(install=install))
    backups = BackupService(repos=repos, records=records, runner=runner, flows=backup_flows,
                            restic=restic)
    return Services(paths=paths, db=db, bus=bus, engine=engine, compose=compose,
                    catalog=catalog, records=records, status=status, runner=runner, flows=flows,
                    apps=apps,
                    admin_digest=token_digest(token), auth=auth, proxy=proxy, domains=domains,
                    backups=backups)
