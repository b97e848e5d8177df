"""Serve updates: check for them, update an instance safely, roll back the last update."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from typing import Any

from stackhub.adapters.images import ImageDigests
from stackhub.apps.models import Accepted, InstanceStatus
from stackhub.apps.service import AppsService
from stackhub.catalog.models import AppDefinition
from stackhub.catalog.service import Catalog
from stackhub.errors import Conflict, Invalid, NotFound, StackHubError, StorageFull
from stackhub.state.db import Database, now
from stackhub.updates.flows import ROLLBACK, UPDATE, UpdateFlows, stability_default
from stackhub.updates.models import ImageUpdate, UpdateRead, UpdateRequest
from stackhub.updates.prune import ImagePruner

DATABASES = re.compile(r"(^|/)(postgres|postgis|mysql|mariadb|mongo|timescaledb|"
                       r"pgvecto-rs|percona|cockroach)[^/:]*(:|$)")
log = logging.getLogger(__name__)
CHECK_INTERVAL = 24 * 3600.0
SPACE_MARGIN = 1.2
SPACE_EXTRA = 512 * 1024 * 1024  # room for new image layers (their size is unknown before)


def version_key(text: str) -> tuple[int, ...] | None:
    """Numbers of a version label (`v1.10.2` -> (1, 10, 2)); None if it has none."""
    numbers = re.findall(r"\d+", text)
    return tuple(int(n) for n in numbers[:6]) if numbers else None


def major_of(image: str) -> str | None:
    """The major version in an image's tag (`postgres:15.4-alpine` -> "15")."""
    tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else "latest"
    match = re.match(r"v?(\d+)", tag)
    return match.group(1) if match else None


def database_major_changes(old: dict[str, object], new: dict[str, object]) -> list[str]:
    """Services whose database image changes its major version, explained."""
    found: list[str] = []
    old_services = old.get("services") if isinstance(old.get("services"), dict) else {}
    new_services = new.get("services") if isinstance(new.get("services"), dict) else {}
    assert isinstance(old_services, dict) and isinstance(new_services, dict)
    for name, spec in new_services.items():
        before = old_services.get(name)
        if not isinstance(spec, dict) or not isinstance(before, dict):
            continue
        image, was = str(spec.get("image", "")), str(before.get("image", ""))
        if image != was and DATABASES.search(image) and major_of(image) != major_of(was):
            found.append(f"service {name}: {was} -> {image}")
    return found


def _tree_size(folder: object) -> int:
    total = 0
    for root, _dirs, files in os.walk(str(folder)):
        for file in files:
            try:
                total += os.lstat(os.path.join(root, file)).st_size  # noqa: PTH118
            except OSError:
                continue
    return total


@dataclass(frozen=True)
class Prepared:
    """An update that passed its preflight, ready to run."""

    draft: Any
    stability: float
    reason: str
    app_ref: str
    version: str


class UpdatesService:
    """The entry points of updates, used by the API."""

    def __init__(self, *, db: Database, apps: AppsService, catalog: Catalog,
                 flows: UpdateFlows, images: ImageDigests,
                 pruner: ImagePruner | None = None) -> None:
        """Keep the collaborators; `pruner` keeps the images updates replace (7 days)."""
        self.db = db
        self.apps = apps
        self.catalog = catalog
        self.flows = flows
        self.images = images
        self.pruner = pruner

    # -- detection ------------------------------------------------------------------------------
    def _catalog_app(self, name: str) -> AppDefinition | None:
        record = self.apps.records.get(name)
        if record.store is None:
            return None
        try:
            return self.catalog.get(record.app_ref)
        except StackHubError:
            return None

    def _newer(self, app: AppDefinition, version: str, revision: int | None) -> bool:
        if app.version == version:
            return app.revision is not None and revision is not None and app.revision > revision
        new, old = version_key(app.version), version_key(version)
        if new is not None and old is not None:
            return new > old
        return False  # labels that cannot be ordered are never updated to automatically

    def _check_images(self, name: str) -> tuple[list[ImageUpdate], list[str]]:
        folder = self.apps.paths.instance_dir(name)
        flows = self.apps.flows
        images = flows._project_images(flows._project(folder))
        found: list[ImageUpdate] = []
        errors: list[str] = []
        for image in images:
            if "@sha256:" in image:
                continue  # pinned by digest: nothing can move behind it
            try:
                remote = self.images.remote_digest(image)
                _id, digests = self.images.local(image)
            except StackHubError as err:
                errors.append(f"{image}: {err.message}")
                continue
            if not any(d.endswith("@" + remote) for d in digests):
                found.append(ImageUpdate(image=image, local=digests[0] if digests else None,
                                         remote=remote))
        return found, errors

    def read(self, name: str) -> UpdateRead:
        """What is known about an instance's update, without asking any registry."""
        record = self.apps.records.get(name)
        rows = self.db.query("SELECT * FROM instance_updates WHERE instance = ?", (name,))
        images = [ImageUpdate(**i) for i in json.loads(rows[0]["images"])] if rows else []
        if record.update_available:
            read = UpdateRead(instance=name, current_version=record.version,
                              update_available=True, latest_version=record.update_available,
                              update_kind="version", images=images)
            app = self._catalog_app(name)
            if app is not None and app.version == record.update_available:
                read.release_notes = dict(app.release_notes)
                read.min_from = app.update.min_from if app.update else None
                changes = database_major_changes(record.definition.get("compose") or {},
                                                 app.model_dump(mode="json")["compose"])
                rule = path_rule(app, name, record.version)
                read.blocked = rule or _blocked(changes)
                read.blocked_code = "min_from" if rule else (
                    "database_major" if changes else None)
            return read
        if rows:
            return UpdateRead(instance=name, current_version=record.version,
                              update_available=True, latest_version=rows[0]["latest_version"],
                              update_kind=rows[0]["kind"], images=images)
        return UpdateRead(instance=name, current_version=record.version, update_available=False)

    def available(self) -> list[UpdateRead]:
        """Every instance with a known update (from the last check; no registry is asked)."""
        found = [self.read(r.name) for r in self.apps.records.all()]
        return [f for f in found if f.update_available]

    async def check(self, name: str | None = None) -> list[UpdateRead]:
        """Look for newer versions in the catalog and new digests behind the same tags."""
        names = [name] if name else [r.name for r in self.apps.records.all()]
        out: list[UpdateRead] = []
        for item in names:
            record = self.apps.records.get(item)
            app = self._catalog_app(item)
            label = None
            if app is not None and self._newer(app, record.version, record.revision):
                label = app.version
            self.apps.records.set_update_available(item, label)
            images, errors = await asyncio.to_thread(self._check_images, item)
            with self.db.transaction() as conn:
                conn.execute("DELETE FROM instance_updates WHERE instance = ?", (item,))
                if images:
                    conn.execute("INSERT INTO instance_updates (instance, kind, latest_version,"
                                 " images, checked_at) VALUES (?,?,?,?,?)",
                                 (item, "digest", record.version,
                                  json.dumps([i.model_dump() for i in images]), now()))
            read = self.read(item)
            read.errors = errors
            out.append(read)
        return out

    # -- update ---------------------------------------------------------------------------------
    def _claimable(self, name: str) -> None:
        record = self.apps.records.get(name)
        if record.status in (InstanceStatus.INSTALLING, InstanceStatus.REMOVING) or \
                self.apps.runner.busy(name):
            raise Conflict(f"instance {name!r} is busy; wait for its operation to finish")

    def _space(self, name: str) -> None:
        need = int(_tree_size(self.apps.paths.instance_data(name)) * SPACE_MARGIN) + SPACE_EXTRA
        free = shutil.disk_usage(self.apps.paths.root).free
        if free < need:
            raise StorageFull(f"the update needs about {need / 1e6:.0f} MB free on the data "
                              f"disk (a snapshot and new images) but {free / 1e6:.0f} MB are "
                              "free; nothing was changed")

    def _unfinished(self, name: str) -> None:
        state = self.flows.load_state(name)
        if state is not None and state.get("snapshot"):
            raise Conflict(f"an earlier update of {name} did not finish (the engine went away "
                           f"during it); run `stackhub app rollback {name}` first")

    async def update(self, name: str, request: UpdateRequest) -> Accepted:
        """Preflight, then start the update operation (see updates/flows.py)."""
        self._claimable(name)
        self._unfinished(name)
        await self.apps.runner.ensure_engine(UPDATE)
        prepared = await self.prepare(name, request)
        self._claimable(name)
        runner = self.apps.runner
        op = runner.begin(UPDATE, name)
        runner.start(op, lambda run: self.flows.update(run, prepared.draft,
                                                       stability=prepared.stability,
                                                       reason=prepared.reason))
        return Accepted(operation=op, instance=name, app=prepared.app_ref,
                        version=prepared.version)

    async def prepare(self, name: str, request: UpdateRequest) -> Prepared:
        """The preflight of an update (nothing changes): target, rules, disk, risks, draft.

        Also run inside an auto-update's own operation, so it claims nothing.
        """
        record = self.apps.records.get(name)
        settings = self.apps.settings
        current = settings_app(record.definition, name)
        app = self._catalog_app(name)
        target = current
        older: str | None = None
        if (app is not None and app.version != record.version) or (
                app is not None and app.revision != record.revision):
            assert app is not None
            if self._newer(app, record.version, record.revision):
                target = app
            else:  # only the installed definition's own images may still be updated
                older = (f"the store offers {app.ref} {app.version}, which is not newer than "
                         f"the installed {record.version}: StackHub never downgrades by "
                         "accident (restore a backup to go back); nothing was changed")
        if target is not current:
            rule = path_rule(target, name, record.version)
            if rule:
                raise Conflict(rule, details={"min_from": target.update.min_from
                                              if target.update else None,
                                              "current": record.version,
                                              "latest": target.version})
        digests = self.read(name).update_kind == "digest"
        if target is current and not digests and not request.force:
            raise Conflict(older or f"{name} is up to date ({record.version}); run `stackhub "
                           "app check-updates` first, or pass force to pull its images again")
        changes = database_major_changes(record.definition.get("compose") or {},
                                         target.model_dump(mode="json")["compose"])
        if changes and not request.allow_database_major:
            raise Conflict(_blocked(changes) or "", details={"changes": changes})
        # the disk check walks the data folder: in a thread, beside the draft's compose runs
        # (a full disk is still the error reported when both fail, as when it ran first)
        space = asyncio.ensure_future(asyncio.to_thread(self._space, name))
        kept = dict(record.parameters)
        try:
            draft = await settings.draft(name, target, {}, kept)
        finally:
            await space
        if draft.needs_consent:
            raise Conflict("the new version asks for risky options the installed one did not: "
                           "review them with `stackhub app plan`, then reinstall",
                           details={"risks": [r.model_dump() for r in draft.plan.risks]})
        stability = request.stability if request.stability is not None else stability_default()
        reason = f"update to {target.version}" if target is not current else "update (images)"
        return Prepared(draft=draft, stability=stability, reason=reason,
                        app_ref=record.app_ref, version=target.version)

    async def rollback(self, name: str) -> Accepted:
        """Go back to the revision before the last update (definition and data)."""
        self._claimable(name)
        await self.apps.runner.ensure_engine(ROLLBACK)
        revisions = self.apps.settings.revisions.all(name)
        state = self.flows.load_state(name)
        if state is not None and state.get("snapshot"):  # an update the engine cut short
            op = self.apps.runner.begin(ROLLBACK, name)
            snapshot = str(state["snapshot"])
            current = revisions[-1].number if revisions else 1
            self.apps.runner.start(op, lambda run: self.flows.rollback(run, snapshot, current))
            return Accepted(operation=op, instance=name)
        last = next((r for r in reversed(revisions) if r.snapshot), None)
        if last is None:
            raise NotFound(f"{name} has no update to roll back")
        before = [r for r in revisions if r.number < last.number]
        if not before:
            raise Invalid(f"the revision before {name}'s last update is not kept")
        op = self.apps.runner.begin(ROLLBACK, name)
        snapshot = str(last.snapshot)
        kept = self.pruner.kept_for(name) if self.pruner is not None else {}
        self.apps.runner.start(op, lambda run: self.flows.rollback(run, snapshot,
                                                                   before[-1].number, kept))
        return Accepted(operation=op, instance=name, app=last.version)


def check_interval() -> float:
    """Seconds between update checks: STACKHUB_UPDATE_CHECK_INTERVAL (0: never), else a day."""
    try:
        return max(float(os.environ.get("STACKHUB_UPDATE_CHECK_INTERVAL", CHECK_INTERVAL)), 0.0)
    except ValueError:
        return CHECK_INTERVAL


async def _check_rounds(service: UpdatesService, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            found = await service.check()
            log.info("update check: %d of %d instances have an update",
                     sum(1 for f in found if f.update_available), len(found))
        except StackHubError as err:
            log.warning("update check failed: %s", err.message)


def start_checks(service: UpdatesService) -> asyncio.Task[None] | None:
    """Check for updates on a schedule (daily by default) in the background."""
    interval = check_interval()
    if interval <= 0:
        return None
    return asyncio.get_running_loop().create_task(_check_rounds(service, interval),
                                                  name="update-checks")


async def stop_checks(task: asyncio.Task[None] | None) -> None:
    """Stop the scheduled checks."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def path_rule(app: AppDefinition, name: str, current: str) -> str | None:
    """Why `app` cannot be applied over `current` (its declared min_from), or None."""
    minimum = app.update.min_from if app.update else None
    if not minimum:
        return None
    need, have = version_key(minimum), version_key(current)
    if need is not None and have is not None and have >= need:
        return None
    return (f"{app.ref} {app.version} can only be reached from {minimum} or later, and "
            f"{name} runs {current}: first update it to the intermediate version {minimum}, "
            f"then to {app.version}; nothing was changed")


def _blocked(changes: list[str]) -> str | None:
    if not changes:
        return None
    return ("a database image changes its major version (" + "; ".join(changes) + "): its "
            "data files usually need a manual upgrade (dump and restore), so StackHub never "
            "applies this automatically; read the app's upgrade notes, take a backup, then "
            "update with --allow-database-major")


def settings_app(definition: dict[str, object], name: str) -> AppDefinition:
    """The stored definition of an instance."""
    try:
        return AppDefinition.model_validate(definition)
    except ValueError as err:
        raise Invalid(f"the stored definition of {name!r} can no longer be read") from err
