"""Wire StackHub's services together once per server (no global state)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stackhub import fsutil
from stackhub.adapters.cgroups import CgroupReader
from stackhub.adapters.compose import Compose, ComposeCli
from stackhub.adapters.engine import DockerEngine, Engine
from stackhub.adapters.images import ImageDigests
from stackhub.adapters.restic import ResticCli
from stackhub.adapters.volumes import VolumeCopier
from stackhub.apps.extras import last_backups
from stackhub.apps.fence import PoolFence
from stackhub.apps.flows import Flows
from stackhub.apps.kept import KeptData
from stackhub.apps.loopback import project_files
from stackhub.apps.planner import Planner
from stackhub.apps.revisions import Revisions
from stackhub.apps.service import AppsService
from stackhub.apps.settings import InstanceSettings
from stackhub.apps.status import StatusCache
from stackhub.apps.subnets import SubnetAllocator
from stackhub.auth.admin_token import ensure_admin_token, token_digest
from stackhub.auth.service import AuthService
from stackhub.backup.clone import Cloner
from stackhub.backup.flows import DEFINITION, BackupFlows, RestorePlan, check_paths, record_of
from stackhub.backup.repos import Repositories
from stackhub.backup.service import BackupService
from stackhub.catalog.service import Catalog
from stackhub.config import Paths, subnet_pool
from stackhub.errors import NotFound
from stackhub.events import EventBus
from stackhub.notify.service import NotifyService
from stackhub.notify.watch import Watcher, WatchSettings, recovery_notice
from stackhub.operations.journal import Journal
from stackhub.operations.runner import Run, Runner
from stackhub.proxy.addresses import OpenAddresses
from stackhub.proxy.dns01 import WildcardFlows
from stackhub.proxy.flows import DomainFlows
from stackhub.proxy.publish import RecordPublisher
from stackhub.proxy.records import DomainRecords
from stackhub.proxy.service import ProxyService
from stackhub.state.db import Database
from stackhub.state.instances import Records
from stackhub.system.history import MetricsHistory
from stackhub.system.history_sampler import HistorySampler, interval
from stackhub.system.history_store import HistoryStore
from stackhub.tools.terminals import Terminals
from stackhub.updates.auto import AutoUpdater
from stackhub.updates.flows import UpdateFlows
from stackhub.updates.prune import ImagePruner
from stackhub.updates.service import UpdatesService


def host_timezone() -> str:
    """Return the host's time zone name, or UTC."""
    if os.environ.get("TZ"):
        return os.environ["TZ"]
    tzfile = Path("/etc/timezone")
    if tzfile.is_file():
        return tzfile.read_text().strip() or "UTC"
    return "UTC"


def zone(name: str) -> tzinfo:
    """Return a time zone by name (UTC if unknown): backup schedules are read in it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


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
    wildcard: WildcardFlows
    dns_records: RecordPublisher
    backups: BackupService
    terminals: Terminals
    settings: InstanceSettings
    updates: UpdatesService
    kept: KeptData
    notify: NotifyService
    notify_watch: Watcher
    metrics_history: HistorySampler
    cloner: Cloner
    auto_updates: AutoUpdater
    pruner: ImagePruner
    fence: PoolFence


class PreUpdateSnapshots:
    """An update's snapshot and restore, run by the backup domain's flows inside the update's
    own operation (updates may use only backup's service, so the wiring lives here)."""

    def __init__(self, backups: BackupService) -> None:
        """Use `backups` (its default repository)."""
        self.backups = backups

    async def take(self, run: Run, name: str) -> str:
        """Stop the instance and back it up, tagged kind=pre-update; leave it stopped (also on
        failure: the update starts the old version); return the snapshot id."""
        repo = await self.backups.ready(self.backups.repos.handle(None))
        taken: list[str] = []  # the id restic reports: no second restic run to list snapshots
        await self.backups.flows.backup(run, repo, kind="pre-update", stop=True, restart=False,
                                        done=taken.append)
        if not taken:
            raise NotFound(f"the pre-update snapshot of {name!r} is not in the repository")
        return taken[-1]

    async def put_back(self, run: Run, name: str, snapshot: str) -> None:
        """Restore a snapshot over the instance: definition, values, folders, volumes."""
        repo = await self.backups.ready(self.backups.repos.handle(None))
        found = await self.backups.restic.snapshots(repo, tags=["stackhub", f"instance={name}"])
        snap = next((s for s in found if snapshot and s.id.startswith(snapshot)), None)
        if snap is None:
            raise NotFound(f"snapshot {snapshot[:8]} of {name!r} is not in the repository")
        size = check_paths(await self.backups.restic.ls(repo, snap.id), name)
        raw = await self.backups.restic.dump(repo, snap.id, f"/backups/stage/{name}/{DEFINITION}")
        definition = json.loads(raw)
        plan = RestorePlan(repo=repo, snapshot=snap, source=name, definition=definition,
                           record=record_of(definition, name), existed=True, size=size)
        await self.backups.flows.restore(run, plan)


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


def metrics_history(paths: Paths, db: Database, engine: Engine,
                    status: StatusCache) -> HistorySampler:
    """The metrics history's sampler: containers from the status cache, rollups in `db`."""
    def pid_of(container_id: str) -> int | None:
        return engine.inspect_container(container_id).pid

    return HistorySampler(MetricsHistory(HistoryStore(db), interval=interval()), root=paths.root,
                          containers=lambda: status.by_instance,
                          reader=CgroupReader(pid_of=pid_of),
                          volume_sizes=getattr(engine, "volume_sizes", None))


def build(paths: Paths, *, engine: Engine | None = None, compose: Compose | None = None,
          public_host: str = "localhost") -> Services:
    """Create the services for a data root."""
    paths.ensure()
    install = install_id(paths)
    db = Database(paths.db)
    bus = EventBus()
    engine = engine or DockerEngine(install=install)
    compose = compose or ComposeCli(files=project_files)
    catalog = Catalog(db, paths.stores)
    records = Records(db)
    status = StatusCache(engine, bus)
    runner = Runner(journal=Journal(db), bus=bus, watch=status)
    pool = subnet_pool()
    subnets = SubnetAllocator(db, engine, pool)
    kept = KeptData(db, paths, records, engine, install)
    flows = Flows(paths=paths, records=records, engine=engine, compose=compose, runner=runner,
                  status=status, subnets=subnets, kept=kept,
                  sandbox=engine if isinstance(engine, DockerEngine) else None)
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
    subnets.busy = proxy.dialled  # a block the gateway still dials goes to no other app
    dns_records = RecordPublisher(proxy=proxy)  # records at the DNS provider, public IP
    domains = DomainFlows(proxy=proxy, runner=runner, publisher=dns_records)
    wildcard = WildcardFlows(proxy=proxy, runner=runner)  # DNS-01 wildcard, daily renewal
    repos = Repositories(db, paths)
    repos.ensure_default()
    restic = ResticCli()
    backup_flows = BackupFlows(paths=paths, records=records, engine=engine, compose=compose,
                               apps=apps, runner=runner, restic=restic,
                               volumes=VolumeCopier(install=install))
    backups = BackupService(repos=repos, records=records, runner=runner, flows=backup_flows,
                            restic=restic, tz=zone(host_timezone()),
                            audit=lambda action, target, ok, details: auth.audit.record(
                                actor="scheduler", action=action, target=target, success=ok,
                                details=details))
    settings = InstanceSettings(paths=paths, records=records, planner=planner, flows=flows,
                                runner=runner, compose=compose, revisions=Revisions(db))
    apps.settings = settings
    apps.extras += [OpenAddresses(proxy), last_backups(backups.store.lasts)]
    images = ImageDigests()
    pruner = ImagePruner(db, engine)
    update_flows = UpdateFlows(apps=apps, runner=runner, snapshots=PreUpdateSnapshots(backups),
                               images=images, root=paths.root, replaced=pruner.record)
    updates = UpdatesService(db=db, apps=apps, catalog=catalog, flows=update_flows,
                             images=images, pruner=pruner)
    auto_updates = AutoUpdater(updates=updates, db=db, bus=bus, tz=zone(host_timezone()))
    notify = NotifyService(db=db, secrets_dir=paths.secrets, bus=bus,
                           may_see=auth.accounts.may_see, console_url=proxy.console_url)
    notify_watch = Watcher(service=notify, instances=apps.all, backups=backups.status,
                           domains=proxy.domains, root=paths.root,
                           settings=WatchSettings.from_env(), checks=backups.checks,
                           system_backup=backups.system_status)
    backups.recovery_report = recovery_notice(notify)
    return Services(paths=paths, db=db, bus=bus, engine=engine, compose=compose,
                    catalog=catalog, records=records, status=status, runner=runner, flows=flows,
                    apps=apps,
                    admin_digest=token_digest(token), auth=auth, proxy=proxy, domains=domains,
                    wildcard=wildcard, dns_records=dns_records,
                    backups=backups, terminals=Terminals(apps=apps), settings=settings,
                    updates=updates, kept=kept, notify=notify, notify_watch=notify_watch,
                    metrics_history=metrics_history(paths, db, engine, status),
                    cloner=Cloner(backups), auto_updates=auto_updates, pruner=pruner,
                    fence=PoolFence(bus, pool, enabled=None if isinstance(engine, DockerEngine)
                                    else False))  # never the host's firewall beside a fake
