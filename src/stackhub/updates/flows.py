"""The steps of `update` and `rollback`, and the after-crash half of both.

Update: pull while the app runs (the old image ids are remembered), stop, pre-update snapshot
(abort and start again if it fails), state file, write the new definition (values kept, new
parameters get defaults, secrets stay), start, wait until ready, then a stability window (no
restart, no unhealthy or exited container, the main web entry answering below 500). Any failure
after the stop rolls back: the old image ids get their tags back, the snapshot is restored
(definition, values, folders and volumes) and started. After a crash the state file says
where the update was: before the new definition was written, the old one is started again;
after, the rollback is run.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from stackhub import faults, fsutil, labels
from stackhub.adapters.images import ImageDigests
from stackhub.apps.models import InstanceStatus
from stackhub.apps.service import AppsService
from stackhub.errors import EngineError, StackHubError
from stackhub.operations.models import OperationRead
from stackhub.operations.runner import OperationKind, Outcome, Run, Runner, register
from stackhub.state.instances import InstanceRecord, PortMapping

log = logging.getLogger(__name__)
UPDATE = register(OperationKind("update", "the update", None, None, None,
                                hint="check the app, then update it again"))
ROLLBACK = register(OperationKind("rollback", "the rollback", None, None, None,
                                  hint="roll it back again"))
POLL = 1.0


def stability_default() -> float:
    """Seconds of the stability window: STACKHUB_UPDATE_STABILITY, else 60."""
    try:
        return float(os.environ.get("STACKHUB_UPDATE_STABILITY", "60"))
    except ValueError:
        return 60.0


class Snapshots(Protocol):
    """The backup domain's snapshot and restore, run inside an update's operation."""

    async def take(self, run: Run, name: str) -> str:
        """Stop the instance, snapshot it and leave it stopped; return the snapshot id."""
        ...
    async def put_back(self, run: Run, name: str, snapshot: str) -> None: ...


class UpdateFlows:
    """The steps of update and rollback."""

    def __init__(self, *, apps: AppsService, runner: Runner, snapshots: Snapshots,
                 images: ImageDigests, root: Path,
                 replaced: Callable[[str, dict[str, str], dict[str, str]], object] | None = None
                 ) -> None:
        """Keep the collaborators; register the after-crash hooks.

        `replaced(name, old ids, new ids)` hears of the images a successful update replaced
        (updates/prune.py keeps them 7 days).
        """
        self.apps = apps
        self.runner = runner
        self.snapshots = snapshots
        self.images = images
        self.root = root
        self.replaced = replaced
        runner.after_crash(UPDATE.name, self.after_update_crash)
        runner.after_crash(ROLLBACK.name, self.after_update_crash)

    # -- state ----------------------------------------------------------------------------------
    def state_path(self, name: str) -> Path:
        """Where an update in progress keeps what a rollback needs."""
        return self.root / "updates" / f"{name}.json"

    def save_state(self, name: str, state: dict[str, Any]) -> None:
        """Write the state file (0600, atomically)."""
        path = self.state_path(name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fsutil.write_atomic(path, json.dumps(state, indent=2), mode=0o600)

    def load_state(self, name: str) -> dict[str, Any] | None:
        """Read the state file, if any."""
        path = self.state_path(name)
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else None

    def drop_state(self, name: str) -> None:
        """Remove the state file."""
        with contextlib.suppress(FileNotFoundError):
            self.state_path(name).unlink()

    # -- helpers --------------------------------------------------------------------------------
    def _image_ids(self, images: list[str]) -> dict[str, str]:
        ids: dict[str, str] = {}
        for image in images:
            with contextlib.suppress(StackHubError):
                ids[image] = self.images.local(image)[0]
        return ids

    async def _pull(self, run: Run, images: list[str]) -> None:
        """Pull the images side by side (the app still runs); raise the first failure once
        every pull has ended."""
        done = [0]

        async def one(image: str) -> None:
            await asyncio.to_thread(self.apps.flows.engine.pull, image, lambda _p: None)
            done[0] += 1
            run.emit("progress", step="pull", progress=5.0 + 25.0 * done[0] / len(images),
                     image=image)

        results = await asyncio.gather(*(one(i) for i in images), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _start_old(self, name: str) -> None:
        folder = self.apps.paths.instance_dir(name)
        await self.apps.compose.up(labels.project_name(name), folder)
        await self.apps.refresh()

    def _probe(self, port: int, path: str) -> str | None:
        """Ask the main web entry once; return a problem, or None if it answered below 500."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", path or "/")
            status = conn.getresponse().status
        except OSError as err:
            return f"the main web entry on port {port} does not answer ({err})"
        finally:
            conn.close()
        return f"the main web entry answered HTTP {status}" if status >= 500 else None

    async def _stable(self, run: Run, name: str, seconds: float) -> None:
        """Watch the app for `seconds`: fail on a restart, an exited or unhealthy container,
        or a main web entry answering 500 or more (or not at all)."""
        flows = self.apps.flows
        record = self.apps.records.get(name)
        port = next((p.host_port for p in record.ports if p.service == record.main_service
                     and p.container_port == record.main_port and p.protocol == "tcp"), None)
        scheme = (record.definition.get("main") or {}).get("scheme", "http")
        deadline = time.monotonic() + seconds
        while True:
            await self.apps.refresh()
            for container in self.apps.status.containers(name):
                if container.state in ("exited", "dead", "restarting") and \
                        not container.status.startswith("Exited (0)"):
                    raise EngineError(f"container {container.name} is {container.state} during "
                                      "the stability window; see its logs")
                if container.health == "unhealthy":
                    raise EngineError(f"container {container.name} became unhealthy during the "
                                      "stability window")
            restarted = await asyncio.to_thread(flows._restarted, name, look=True)
            if restarted:
                raise EngineError(f"{restarted} during the stability window")
            if port is not None and scheme == "http":
                problem = await asyncio.to_thread(self._probe, port, record.main_path or "/")
                if problem:
                    raise EngineError(f"{problem} during the stability window")
            left = deadline - time.monotonic()
            if left <= 0:
                return
            run.emit("progress", step="stability", progress=90.0, seconds_left=round(left, 1))
            await asyncio.sleep(min(POLL, left))

    # -- update ---------------------------------------------------------------------------------
    async def update(self, run: Run, draft: Any, *, stability: float, reason: str) -> Outcome:
        """Pull, stop, snapshot, apply, start, wait, watch; roll back on any failure."""
        name = run.op.instance
        settings = self.apps.settings
        old_record = self.apps.records.get(name)
        settings.revisions.ensure_first(old_record)
        folder = self.apps.paths.instance_dir(name)
        old_images = self.apps.flows._project_images(self.apps.flows._project(folder))
        new_images = self.apps.flows._project_images(json.loads(json.dumps(
            draft.plan.rendered.compose)))
        run.step("pull", 5.0)  # from here: reading the old image ids is the engine's time too
        kept = await asyncio.to_thread(self._image_ids, old_images)
        await self._pull(run, new_images)
        await faults.checkpoint("update-pulled")
        was_running = run.prior_status in (InstanceStatus.RUNNING.value,
                                           InstanceStatus.STARTING.value,
                                           InstanceStatus.UNHEALTHY.value,
                                           InstanceStatus.PARTIAL.value, None)
        state: dict[str, Any] = {"op": run.op.id, "phase": "stopped", "images": kept,
                                 "was_running": was_running, "snapshot": None}
        self.save_state(name, state)
        try:
            # the snapshot stops the app itself, its volume helper starting beside the stop
            snapshot = await self.snapshots.take(run, name)
        except StackHubError as err:
            with contextlib.suppress(StackHubError):
                await self._start_old(name)
            self.drop_state(name)
            err.message = (f"{err.message}; the pre-update snapshot could not be taken, so the "
                           "update was not applied (the app runs its old version)")
            raise
        state.update(phase="applying", snapshot=snapshot, files=settings.files_of(name),
                     record=_record_json(old_record))
        self.save_state(name, state)
        try:
            run.step("apply", 60.0, engine=True)
            settings.write(draft)
            await faults.checkpoint("update-applied")
            run.step("start", 65.0, engine=True)
            state["phase"] = "started"  # the new version may write to the data from here on
            self.save_state(name, state)
            await settings.start_and_wait(run, name)
            run.step("stability", 85.0, engine=True)
            await self._stable(run, name, stability)
        except StackHubError as err:
            log.warning("update of %s failed: %s; rolling back", name, err.message)
            try:
                await self.roll_back(run, name, state)
            except StackHubError as again:
                err.message = (f"the update failed ({err.message}) and so did the rollback "
                               f"({again.message}); run `stackhub app rollback {name}`")
                raise
            err.message = (f"the update failed and was rolled back to {old_record.version} "
                           f"(data restored from snapshot {snapshot[:8]}): {err.message}")
            raise
        number = settings.revisions.add(self.apps.records.get(name), reason=reason,
                                        snapshot=snapshot)
        self.apps.records.set_update_available(name, None)
        self.drop_state(name)
        if self.replaced is not None:
            with contextlib.suppress(StackHubError):
                self.replaced(name, kept, await asyncio.to_thread(self._image_ids, new_images))
        log.info("%s updated to revision %d", name, number)
        return InstanceStatus.RUNNING

    async def roll_back(self, run: Run, name: str, state: dict[str, Any]) -> None:
        """Old image tags back, data and definition from the snapshot, started and ready."""
        run.step("rollback", 90.0, engine=True)
        for image, image_id in (state.get("images") or {}).items():
            with contextlib.suppress(StackHubError):
                await asyncio.to_thread(self.images.tag, image_id, image)
        snapshot = state.get("snapshot")
        if snapshot:
            await self.snapshots.put_back(run, name, str(snapshot))
        else:
            await self._start_old(name)
        await self.apps.settings.wait(run, name)
        self.drop_state(name)

    # -- rollback of the last update ------------------------------------------------------------
    async def rollback(self, run: Run, snapshot: str, revision: int,
                       images: dict[str, str] | None = None) -> Outcome:
        """Return to the revision before the last update: its snapshot's definition and data.

        `images` (ref -> id): the images the update replaced, still kept, tagged back first.
        """
        name = run.op.instance
        state: dict[str, Any] = {"op": run.op.id, "phase": "restoring", "snapshot": snapshot,
                                 "images": dict(images or {}), "was_running": True}
        self.save_state(name, state)
        await faults.checkpoint("rollback-started")
        await self.roll_back(run, name, state)
        settings = self.apps.settings
        settings.revisions.add(self.apps.records.get(name), reason=f"rollback to {revision}")
        return InstanceStatus.RUNNING

    # -- crash ----------------------------------------------------------------------------------
    async def after_update_crash(self, op: OperationRead) -> None:
        """Finish what a killed update left: start the old version, or run the rollback."""
        name = op.instance
        state = self.load_state(name)
        if state is None or self.apps.records.find(name) is None:
            return
        run = Run(self.runner, op)
        phase = state.get("phase")
        if phase == "applying" and state.get("record") and state.get("files"):
            # the new version never ran: its data is the snapshot's; the old files suffice
            log.warning("%s: an update was interrupted before the new version started; "
                        "putting the old definition back", name)
            for image, image_id in (state.get("images") or {}).items():
                with contextlib.suppress(StackHubError):
                    await asyncio.to_thread(self.images.tag, image_id, image)
            await self.apps.settings.put_back(_record_of(state["record"]), state["files"])
            self.drop_state(name)
            await self.apps.refresh()
            return
        if phase in ("applying", "started", "restoring"):
            log.warning("%s: an update or rollback was interrupted; restoring the snapshot "
                        "taken before the update", name)
            await self.roll_back(run, name, state)
            return
        self.drop_state(name)
        if state.get("was_running"):
            await self._start_old(name)


def _record_json(record: InstanceRecord) -> dict[str, Any]:
    data = asdict(record)
    data["ports"] = [p.model_dump() for p in record.ports]
    return data


def _record_of(data: dict[str, Any]) -> InstanceRecord:
    return InstanceRecord(**{**data, "ports": [PortMapping(**p) for p in data["ports"]]})

