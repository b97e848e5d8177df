"""Run the multi-step operations on instances: install, retry, remove, crash recovery."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from stackhub import faults, fsutil, labels, yamlsafe
from stackhub.adapters.compose import COMPOSE_FILE, Compose
from stackhub.adapters.engine import Engine, PullProgress
from stackhub.apps.models import InstanceStatus, OperationRead, OperationState
from stackhub.apps.readiness import Wait, assess, one_shot_services
from stackhub.apps.records import Records
from stackhub.apps.status import StatusCache, derive
from stackhub.config import Paths
from stackhub.errors import Conflict, EngineError, StackHubError
from stackhub.events import Event, EventBus

log = logging.getLogger(__name__)
WAIT_TIMEOUT = 300
SETTLE = 0.5
"""No success before this long after compose returned: compose's --wait first looks at 0.5 s,
so a container that dies sooner fails the install here as it would there."""
POLL_FAST = 0.1
POLL_SLOW = 0.5


class Flows:
    """Own the background tasks of operations, one at a time per instance."""

    def __init__(self, *, paths: Paths, records: Records, engine: Engine, compose: Compose,
                 bus: EventBus, status: StatusCache) -> None:
        """Keep the collaborators every flow needs."""
        self.paths = paths
        self.records = records
        self.engine = engine
        self.compose = compose
        self.bus = bus
        self.status = status
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._pulls: dict[str, dict[str, dict[str, object]]] = {}  # op -> image -> last event

    def busy(self, instance: str) -> bool:
        """Tell whether an operation on `instance` is running in this process."""
        task = self.tasks.get(instance)
        return task is not None and not task.done()

    def claim(self, instance: str) -> None:
        """Refuse to start a second operation on a busy instance."""
        if self.busy(instance):
            raise Conflict(f"instance {instance!r} is busy with another operation; wait for it "
                           "to finish")

    def spawn(self, op: OperationRead, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `work` in the background as the task of `op`'s instance."""
        self.tasks[op.instance] = asyncio.create_task(work(), name=f"op-{op.id}")

    def emit(self, op: OperationRead, kind: str, **data: object) -> None:
        """Publish an operation event (and remember the last pull event per image)."""
        payload = {"operation": op.id, "instance": op.instance, "op_kind": op.kind, **data}
        if kind == "pull":
            self._pulls.setdefault(op.id, {})[str(data["image"])] = payload
        elif kind == "finished":
            self._pulls.pop(op.id, None)
        self.bus.publish(Event("operation", op.instance, kind, payload))

    def pulls(self, op_id: str) -> list[dict[str, object]]:
        """Return the last pull event of each image of a running operation, for late followers."""
        return list(self._pulls.get(op_id, {}).values())

    def _step(self, op: OperationRead, step: str, progress: float, *,
              engine: bool = False) -> None:
        self.records.step(op.id, step, progress, created_engine=engine)
        self.emit(op, "step", step=step, progress=progress)

    async def _pull(self, op: OperationRead, images: list[str]) -> None:
        missing = [i for i in images if not await asyncio.to_thread(self.engine.image_present, i)]
        loop = asyncio.get_running_loop()
        for index, image in enumerate(missing):
            last = [0.0]

            def report(p: PullProgress, index: int = index, last: list[float] = last) -> None:
                overall = 60.0 * (index + p.percent / 100.0) / max(1, len(missing))
                now = time.monotonic()
                if p.percent >= 100.0 or now - last[0] > 0.2:
                    last[0] = now
                    loop.call_soon_threadsafe(functools.partial(
                        self.emit, op, "pull", image=p.image, percent=p.percent,
                        status=p.status, layers_done=p.layers_done,
                        layers_total=p.layers_total, progress=overall))

            await asyncio.to_thread(self.engine.pull, image, report)
            self.records.step(op.id, "pull", 60.0 * (index + 1) / len(missing))
            faults.checkpoint("pulled")

    @staticmethod
    def _project(folder: Path) -> dict[str, Any]:
        return yamlsafe.load_mapping((folder / COMPOSE_FILE).read_bytes(),
                                     what="instance compose file")

    @staticmethod
    def _project_images(compose: dict[str, Any]) -> list[str]:
        images: list[str] = []
        for service in (compose.get("services") or {}).values():
            image = str(service.get("image", ""))
            if image and image not in images:
                images.append(image)
        return images

    async def _wait_ready(self, op: OperationRead, one_shot: set[str]) -> None:
        """Wait until every container runs (healthy if it has a healthcheck), as compose --wait.

        Checks every 0.1 s (every 0.5 s after the first 5 s) from the moment compose returned:
        any container found exited or unhealthy fails the install at once, and success needs
        the app ready at a check SETTLE seconds or more after the start, so it is never
        accepted sooner than compose's --wait would (compose first looks at 0.5 s, then every
        0.5 s, which is where StackHub is faster for apps with healthchecks). Tells
        subscribers whom it waits for whenever that changes.
        """
        started = time.monotonic()
        told: list[Wait] = []
        while True:
            await asyncio.to_thread(self.status.refresh)
            verdict = assess(self.status.containers(op.instance), one_shot)
            elapsed = time.monotonic() - started
            if verdict.failure:
                raise EngineError(verdict.failure)
            if verdict.ready and elapsed >= SETTLE:
                return
            if elapsed > WAIT_TIMEOUT:
                raise EngineError(f"the app was not ready after {WAIT_TIMEOUT} s: waiting for "
                                  + ", ".join(str(w) for w in verdict.waiting))
            if verdict.waiting != told:
                told = verdict.waiting
                self.emit(op, "step", step="wait", progress=80.0,
                          waiting=[w.as_dict() for w in told])
            delay = POLL_FAST if elapsed < 5 else POLL_SLOW
            if elapsed < SETTLE:  # look again right when success may first be accepted
                delay = min(delay, SETTLE - elapsed)
            await asyncio.sleep(delay)

    async def run_install(self, op: OperationRead, *, rollback_dirs: list[Path] | None) -> None:
        """Pull, start and verify an instance whose project files are written.

        `rollback_dirs` is None for a retry; for a fresh install it lists the folders this
        install created, deleted again if it fails before reaching the engine.
        """
        folder = self.paths.instance_dir(op.instance)
        project = labels.project_name(op.instance)
        try:
            self._step(op, "pull", 0.0)
            compose = self._project(folder)
            await self._pull(op, self._project_images(compose))
            self._step(op, "start", 60.0, engine=True)
            await self.compose.up(project, folder)
            self._step(op, "wait", 80.0, engine=True)
            await self._wait_ready(op, one_shot_services(compose))
            faults.checkpoint("before-record")
            self._step(op, "verify", 95.0, engine=True)
            await asyncio.to_thread(self.status.refresh)
            containers = self.status.containers(op.instance)
            state = derive(InstanceStatus.RUNNING, containers)
            if state not in (InstanceStatus.RUNNING, InstanceStatus.STARTING):
                raise EngineError(f"the app's containers are {state.value} after start")
        except asyncio.CancelledError:
            self._interrupted(op, "the install")
            raise
        except StackHubError as err:
            await self._install_failed(op, err, rollback_dirs)
            return
        except Exception as err:
            log.exception("install %s crashed", op.id)
            await self._install_failed(op, EngineError(f"internal error: {err}"), rollback_dirs)
            return
        self.records.finish(op.id, OperationState.SUCCEEDED, instance_status=InstanceStatus.RUNNING)
        self.emit(op, "finished", state="succeeded", progress=100.0)

    async def _install_failed(self, op: OperationRead, err: StackHubError,
                              rollback_dirs: list[Path] | None) -> None:
        """End a failed install; a fresh one that never reached the engine is undone."""
        if rollback_dirs is not None and not self.records.touched_engine(op.id):
            for folder in rollback_dirs:  # first: on a full disk this frees what the journal needs
                fsutil.remove_tree_inside(folder, folder.parent)
            self.records.finish(op.id, OperationState.FAILED, instance_status=None,
                                error=err.message)
            self.records.delete(op.instance)
            self.emit(op, "finished", state="failed", error=err.message, code=err.code)
        else:
            self._failed(op, err)

    def _interrupted(self, op: OperationRead, what: str) -> None:
        """Journal that the server stopped while `op` ran."""
        self.records.finish(op.id, OperationState.INTERRUPTED,
                            instance_status=InstanceStatus.INTERRUPTED,
                            error=f"the server stopped during {what}")

    def _failed(self, op: OperationRead, err: StackHubError) -> None:
        """Journal a failed operation, mark its instance failed and tell subscribers."""
        self.records.finish(op.id, OperationState.FAILED,
                            instance_status=InstanceStatus.FAILED, error=err.message)
        self.emit(op, "finished", state="failed", error=err.message, code=err.code)

    async def run_remove(self, op: OperationRead, *, purge: bool) -> None:
        """Take an instance down and delete its record (and its folders when purging)."""
        name = op.instance
        folder = self.paths.instance_dir(name)
        try:
            self._step(op, "down", 10.0, engine=True)
            has_files = (folder / COMPOSE_FILE).is_file()
            await self.compose.down(labels.project_name(name), folder if has_files else None,
                                    volumes=purge)
            self._step(op, "cleanup", 80.0, engine=True)
            if purge:
                for root, target in ((self.paths.instances, folder),
                                     (self.paths.appdata, self.paths.instance_data(name))):
                    fsutil.remove_tree_inside(target, root)
            self.records.delete(name)
        except asyncio.CancelledError:
            self._interrupted(op, "removal")
            raise
        except StackHubError as err:
            self._failed(op, err)
            return
        except Exception as err:
            log.exception("remove %s crashed", op.id)
            self._failed(op, EngineError(f"internal error: {err}"))
            return
        self.records.finish(op.id, OperationState.SUCCEEDED, instance_status=None)
        await asyncio.to_thread(self.status.refresh)
        self.emit(op, "finished", state="succeeded", progress=100.0)

    async def recover(self) -> dict[str, list[str]]:
        """After a restart: close interrupted operations and remove engine orphans."""
        report: dict[str, list[str]] = {"interrupted": [], "orphans": []}
        for op in self.records.running_operations():
            exists = self.records.find(op.instance) is not None
            self.records.finish(op.id, OperationState.INTERRUPTED,
                                instance_status=InstanceStatus.INTERRUPTED if exists else None,
                                error="StackHub stopped while this operation ran; retry it")
            report["interrupted"].append(op.instance)
        known = {r.name for r in self.records.all()}
        try:
            containers = await asyncio.to_thread(self.engine.containers)
            networks = await asyncio.to_thread(self.engine.managed_networks)
            volumes = await asyncio.to_thread(self.engine.managed_volumes)
        except StackHubError as err:
            log.warning("cannot reconcile with the engine now: %s", err.message)
            return report
        orphans = {c.instance for c in containers if c.instance and c.instance not in known}
        orphans |= {i for _, i in networks if i and i not in known}
        for container in containers:
            if container.instance in orphans:
                await asyncio.to_thread(self.engine.remove_container, container.id, force=True)
        report["orphans"] = sorted(orphans)
        journaled = {op.instance for op in self.records.operations(limit=10_000)}
        for volume, instance in volumes:
            if instance and instance not in known and instance in journaled:
                # a volume of an install that never completed (its record was rolled back)
                await asyncio.to_thread(self.engine.remove_volume, volume)
        for network, instance in networks:
            if instance and instance not in known:
                with contextlib.suppress(StackHubError):  # often gone with compose down
                    await asyncio.to_thread(self.engine.remove_network, network)
        await asyncio.to_thread(self.status.refresh)
        return report

    def save_values(self, instance: str, values: dict[str, str]) -> None:
        """Keep parameter values beside the project so a reinstall reuses secrets."""
        fsutil.write_atomic(self.paths.instance_dir(instance) / "values.json",
                            json.dumps(values, indent=2, sort_keys=True), mode=0o600)
