"""The steps of the apps domain's operations: install, remove, start, stop, restart.

Each operation is a coroutine given a `Run` (operations/runner.py), which journals its steps
and ends it; this module only says what the steps are, plus the engine half of recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stackhub import faults, fsutil, labels, yamlsafe
from stackhub.adapters.compose import (
    COMPOSE_FILE,
    ENV_FILE,
    Compose,
    ComposeCli,
    ResolvedProject,
)
from stackhub.adapters.engine import Engine, PullProgress
from stackhub.adapters.sandbox import SandboxEngine, ensure_image, limits_from_env
from stackhub.apps import hookproxy, risk
from stackhub.apps import scripts as store_scripts
from stackhub.apps.kept import KeptData
from stackhub.apps.models import InstanceStatus
from stackhub.apps.readiness import Wait, assess, one_shot_services
from stackhub.apps.render import env_file_text, parse_env_file_text
from stackhub.apps.status import PROBE_TIMEOUT, StatusCache, derive
from stackhub.apps.subnets import SubnetAllocator
from stackhub.config import Paths
from stackhub.errors import EngineError, EngineUnavailable, ScriptFailed, StackHubError
from stackhub.operations.models import OperationRead
from stackhub.operations.runner import (
    OperationKind,
    Outcome,
    Run,
    Runner,
    kind_of,
    register,
)
from stackhub.platform import PLATFORM_VARS
from stackhub.state.instances import Records

log = logging.getLogger(__name__)
WAIT_TIMEOUT = 300
SETTLE = 0.5
"""No success before this long after compose returned: compose's --wait first looks at 0.5 s,
so a container that dies sooner fails the install here as it would there."""
POLL_FAST = 0.1
_RESTARTING = re.compile(r"Restarting \((-?\d+)\)")
UP_ATTEMPTS = 3
"""Compose up tries: a network made outside StackHub may take a planned subnet first."""
POLL_SLOW = 0.5

INSTALL = register(OperationKind("install", "the install", InstanceStatus.INSTALLING,
                                 InstanceStatus.FAILED, InstanceStatus.INTERRUPTED))
REMOVE = register(OperationKind("remove", "removal", InstanceStatus.REMOVING,
                                InstanceStatus.FAILED, InstanceStatus.INTERRUPTED,
                                hint="remove it again"))
LIFECYCLE = {verb: register(OperationKind(verb, f"{verb} of the app", None, None, None,
                                          hint=f"{verb} it again"))
             for verb in ("start", "stop", "restart")}


class Flows:
    """The steps of each apps operation, run by the operation runner."""

    def __init__(self, *, paths: Paths, records: Records, engine: Engine, compose: Compose,
                 runner: Runner, status: StatusCache,
                 subnets: SubnetAllocator | None = None, kept: KeptData | None = None,
                 sandbox: SandboxEngine | None = None) -> None:
        """Keep the collaborators every flow needs (`sandbox`: runs store scripts)."""
        self.sandbox = sandbox
        self.subnets = subnets
        self.kept = kept
        self.paths = paths
        self.records = records
        self.engine = engine
        self.compose = compose
        self.runner = runner
        self.status = status
        self.reconciling: asyncio.Task[None] | None = None

    async def _pull(self, run: Run, images: list[str]) -> None:
        missing = [i for i in images if not await asyncio.to_thread(self.engine.image_present, i)]
        for index, image in enumerate(missing):
            last = [0.0]

            def report(p: PullProgress, index: int = index, last: list[float] = last) -> None:
                overall = 60.0 * (index + p.percent / 100.0) / max(1, len(missing))
                now = time.monotonic()
                if p.percent >= 100.0 or now - last[0] > 0.2:
                    last[0] = now
                    run.emit_threadsafe("pull", image=p.image, percent=p.percent,
                                        status=p.status, layers_done=p.layers_done,
                                        layers_total=p.layers_total, progress=overall)

            await asyncio.to_thread(self.engine.pull, image, report)
            run.step("pull", 60.0 * (index + 1) / len(missing))
            await faults.checkpoint("pulled")

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

    async def _up(self, instance: str, folder: Path) -> None:
        """Compose up; when a network made elsewhere took a block first, move and try again."""
        for attempt in range(UP_ATTEMPTS):
            try:
                await self.compose.up(labels.project_name(instance), folder)
                return
            except EngineError as err:
                if attempt + 1 == UP_ATTEMPTS or self.subnets is None or \
                        "Pool overlaps" not in err.message:
                    raise
                compose = self._project(folder)
                moved = await asyncio.to_thread(self.subnets.reassign, instance, compose)
                if not moved:
                    raise
                log.warning("%s: the engine refused a subnet another network took first; "
                            "moved %s", instance, moved)
                fsutil.write_atomic(folder / COMPOSE_FILE, yamlsafe.dump(compose), mode=0o600)

    async def _wait_ready(self, run: Run, one_shot: set[str]) -> None:
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
            verdict = assess(self.status.containers(run.op.instance), one_shot)
            elapsed = time.monotonic() - started
            if verdict.failure:
                raise EngineError(verdict.failure)
            restarting = await asyncio.to_thread(self._restarted, run.op.instance,
                                                 look=verdict.ready and elapsed >= SETTLE)
            if restarting:
                raise EngineError(restarting)
            if verdict.ready and elapsed >= SETTLE:
                return
            if elapsed > WAIT_TIMEOUT:
                raise EngineError(f"the app was not ready after {WAIT_TIMEOUT} s: waiting for "
                                  + ", ".join(str(w) for w in verdict.waiting))
            if verdict.waiting != told:
                told = verdict.waiting
                run.emit("step", step="wait", progress=80.0, waiting=[w.as_dict() for w in told])
            delay = POLL_FAST if elapsed < 5 else POLL_SLOW
            if elapsed < SETTLE:  # look again right when success may first be accepted
                delay = min(delay, SETTLE - elapsed)
            await asyncio.sleep(delay)

    def _restarted(self, instance: str, *, look: bool) -> str | None:
        """Say which container crashed and was restarted by its restart policy, if any.

        With ``restart: unless-stopped`` the engine restarts a crashing container, so it may be
        seen running at every check: a container in state ``restarting``, or (when `look`, at
        the moment success would be accepted) one the engine has already restarted, fails the
        install with its last exit code, as an exited one does without a policy.
        """
        for container in self.status.containers(instance):
            if container.state == "restarting":
                code = _RESTARTING.match(container.status)
                return (f"container {container.name} stopped (exit code "
                        f"{code.group(1) if code else 'unknown'}); see its logs")
            if not look or container.state != "running":
                continue
            try:
                detail = self.engine.inspect_container(container.id)
            except StackHubError:
                continue  # gone meanwhile: the next check sees it
            if detail.restart_count > 0:
                return (f"container {container.name} stopped (exit code {detail.exit_code}); "
                        "see its logs")
        return None

    async def install(self, run: Run) -> Outcome:
        """Pull, start and verify an instance whose project files are written."""
        folder = self.paths.instance_dir(run.op.instance)
        await self._scripts(run, folder)
        run.step("pull", 0.0)
        compose = self._project(folder)
        await self._pull(run, self._project_images(compose))
        run.step("start", 60.0, engine=True)
        try:
            await self._up(run.op.instance, folder)
            run.step("wait", 80.0, engine=True)
            await self._wait_ready(run, one_shot_services(compose))
            await faults.checkpoint("before-record")
            run.step("verify", 95.0, engine=True)
            await asyncio.to_thread(self.status.refresh)
            state = derive(InstanceStatus.RUNNING, self.status.containers(run.op.instance))
            if state not in (InstanceStatus.RUNNING, InstanceStatus.STARTING):
                raise EngineError(f"the app's containers are {state.value} after start")
            await self._post_hooks(run, folder, (store_scripts.POST_INSTALL,
                                                 store_scripts.POST_START))
        except StackHubError as err:
            await self._halt(run.op.instance, folder, err)
            raise
        return InstanceStatus.RUNNING

    async def _scripts(self, run: Run, folder: Path, *, hook_only: bool = False) -> None:
        """Run the app's store scripts in the sandbox; write what they export into ``.env``.

        Before anything reaches the engine, but for a pre-start hook's own requests through
        the compose proxy, served only after a first run of ``exports.sh`` alone was checked.
        Exports may only add values (never change the platform's or the parameters'), and the
        project is analysed again afterwards: a value that makes it riskier than the plan the
        admin saw fails the install (and stops what the hook started).
        """
        record = self.records.find(run.op.instance)
        texts = record.definition.get("scripts") if record is not None else None
        if record is None or not isinstance(texts, dict) or not texts:
            return
        scripts = {str(k): str(v) for k, v in texts.items()}
        if hook_only and store_scripts.PRE_START not in scripts:
            return
        if store_scripts.EXPORTS not in scripts and store_scripts.PRE_START not in scripts:
            return  # only hooks that run after the start (_post_hooks)
        if self.sandbox is None:
            raise ScriptFailed("this app needs its store scripts run, and StackHub has no "
                               "sandbox engine here")
        run.step("scripts", 1.0)
        sandbox_engine = self.sandbox

        def told(text: str) -> None:
            run.emit_threadsafe("step", step="scripts", progress=1.0, detail=text)

        image = await asyncio.to_thread(ensure_image, sandbox_engine, told)
        env_path = folder / ENV_FILE
        env = parse_env_file_text(env_path.read_text())
        derived = record.definition.get("derived")
        placeholders = {k for k, v in (derived if isinstance(derived, dict) else {}).items()
                        if v == "" and env.get(k) == ""}
        app_id = str(record.definition.get("id") or record.app_ref.rsplit("/", 1)[-1])
        await asyncio.to_thread(self.status.refresh)
        ctx = store_scripts.ScriptContext(
            instance=run.op.instance, app_id=app_id,
            data_dir=self.paths.instance_data(run.op.instance),
            env={k: v for k, v in env.items() if k not in placeholders},
            installed=sorted({r.app_ref.rsplit("/", 1)[-1] for r in self.records.all()}),
            containers=[c.name for c in self.status.containers(run.op.instance)],
            addresses=store_scripts.host_addresses(),
            protected=frozenset(PLATFORM_VARS) | frozenset(record.parameters)
            | _names(record.definition.get("exposes")) | _names(record.definition.get("imports")))
        runner = store_scripts.ScriptRunner(sandbox_engine, secrets_dir=self.paths.secrets,
                                            work_dir=self.paths.root / "sandbox", image=image,
                                            limits=limits_from_env())
        project = labels.project_name(run.op.instance)
        before = await self.compose.config(project, folder)  # the accepted plan's values
        proxy = self._proxy(run, folder, app_id) if store_scripts.PRE_START in scripts else None
        if proxy is None:
            mode = "hook" if store_scripts.PRE_START in scripts else "exports"
            outcome = await asyncio.to_thread(runner.run, scripts, ctx, mode=mode)
            await self._apply(run, folder, env, before, outcome)
            return
        # Two runs, so the hook's proxy never starts anything before a check: exports first,
        # checked and written; then the hook, whose `up`/`exec` act on the project with those
        # checked values; then what the exports give after the hook, checked again.
        first = await asyncio.to_thread(runner.run, scripts, ctx, mode="exports")
        await self._apply(run, folder, env, before, first)
        await self._pull(run, self._project_images(self._project(folder)))
        try:
            outcome = await asyncio.to_thread(runner.run, scripts, ctx, mode="hook",
                                              proxy=proxy)
            await self._apply(run, folder, env, before, outcome, proxy_log=proxy.log)
        except StackHubError as err:
            if proxy.acted:
                run.step("scripts", 2.0, engine=True)
                await self._halt(run.op.instance, folder, err)
            raise
        if proxy.acted:
            run.step("scripts", 2.0, engine=True)

    def _proxy(self, run: Run, folder: Path, app_id: str) -> hookproxy.HookProxy | None:
        """Return the compose proxy of one instance's hooks (None without a real Compose)."""
        if not isinstance(self.compose, ComposeCli):
            return None
        services = frozenset(str(s) for s in (self._project(folder).get("services") or {}))
        return hookproxy.HookProxy(
            hookproxy.Scope(app_id=app_id, instance=run.op.instance, services=services),
            compose_argv=self.compose.argv, project=labels.project_name(run.op.instance),
            project_dir=folder)

    async def _apply(self, run: Run, folder: Path, env: dict[str, str], before: ResolvedProject,
                     outcome: store_scripts.ScriptOutcome, *,
                     proxy_log: list[str] | None = None) -> None:
        """Write what the scripts exported into ``.env`` unless it is riskier than `before`."""
        text = "\n".join([*(proxy_log or []), outcome.log]).strip()
        if proxy_log:
            store_scripts.append_log(folder / store_scripts.HOOKS_LOG,
                                     f"hooks/pre-start ({run.op.kind} {run.op.id})\n{text}")
            proxy_log.clear()
        if text:
            run.emit("log", step="scripts", text=text[-4000:])
            for line in text.splitlines():
                if line.startswith(("stackhub: warning:", "stackhub: proxy refused")):
                    log.warning("%s: %s", run.op.instance, line[len("stackhub: "):])
                elif line.startswith("stackhub: proxy:"):
                    log.info("%s: %s", run.op.instance, line[len("stackhub: "):])
        if outcome.skipped:
            log.warning("%s: exported values not used: %s", run.op.instance,
                        "; ".join(outcome.skipped[:10]))
        project = labels.project_name(run.op.instance)
        env_path = folder / ENV_FILE
        merged = {**env, **outcome.exports}
        fsutil.write_atomic(env_path, env_file_text(merged), mode=0o600)
        data_dir = str(self.paths.instance_data(run.op.instance))
        allowed, protected = [data_dir], [str(self.paths.root)]
        try:
            after = await self.compose.config(project, folder)
            _no_links_in_binds(after, Path(data_dir))
            known = {r.model_dump_json() for r in risk.analyse(
                before, allowed_roots=allowed, protected_roots=protected)}
            added = [r for r in risk.analyse(after, allowed_roots=allowed,
                                             protected_roots=protected)
                     if r.model_dump_json() not in known]
            if added:
                raise ScriptFailed("the values the app's store scripts exported make the "
                                   "project riskier than the plan that was accepted: "
                                   + "; ".join(f"{r.service}: {r.detail}" for r in added))
        except StackHubError:
            fsutil.write_atomic(env_path, env_file_text(env), mode=0o600)
            raise
        # kept (0600) for settings changes, updates and retries, which render the project again
        store_scripts.dump_exports(folder / "exports.json", outcome.exports)

    async def _post_hooks(self, run: Run, folder: Path, hooks: tuple[str, ...]) -> None:
        """Run the app's post-install/post-start hooks in the sandbox, with the compose proxy.

        Only after StackHub started the project from the accepted, risk-checked files: the
        proxy (apps/hookproxy.py) then lets a hook run commands in, or start and stop, its own
        app's services and nothing else, every request in the operation's log. A failing hook
        is a warning, as on Umbrel; what it exports is not read back.
        """
        record = self.records.find(run.op.instance)
        texts = record.definition.get("scripts") if record is not None else None
        if record is None or not isinstance(texts, dict):
            return
        scripts = {str(k): str(v) for k, v in texts.items()}
        todo = [h for h in hooks if h in scripts]
        if not todo or self.sandbox is None or not isinstance(self.compose, ComposeCli):
            if todo:
                log.warning("%s: %s not run: no sandbox or compose proxy here",
                            run.op.instance, ", ".join(todo))
            return
        run.step("hooks", 97.0)
        image = await asyncio.to_thread(ensure_image, self.sandbox)
        env = parse_env_file_text((folder / ENV_FILE).read_text())
        app_id = str(record.definition.get("id") or record.app_ref.rsplit("/", 1)[-1])
        proxy = self._proxy(run, folder, app_id)
        assert proxy is not None  # a ComposeCli, checked above
        await asyncio.to_thread(self.status.refresh)
        ctx = store_scripts.ScriptContext(
            instance=run.op.instance, app_id=app_id,
            data_dir=self.paths.instance_data(run.op.instance), env=env,
            installed=sorted({r.app_ref.rsplit("/", 1)[-1] for r in self.records.all()}),
            containers=[c.name for c in self.status.containers(run.op.instance)],
            addresses=store_scripts.host_addresses())
        runner = store_scripts.ScriptRunner(self.sandbox, secrets_dir=self.paths.secrets,
                                            work_dir=self.paths.root / "sandbox", image=image,
                                            limits=limits_from_env())
        for hook in todo:
            try:
                outcome = await asyncio.to_thread(runner.run, scripts, ctx,
                                                  mode=hook.removeprefix("hooks/"), proxy=proxy)
                text = outcome.log
            except ScriptFailed as err:
                text = f"{err.message}\nstackhub: warning: {hook} did not finish (the app " \
                       "keeps running, as on Umbrel)"
                log.warning("%s: %s", run.op.instance, err.message.splitlines()[0])
            text = "\n".join([f"{hook} ({run.op.kind} {run.op.id})", *proxy.log,
                              text.strip()]).strip()
            proxy.log.clear()
            for line in text.splitlines():
                if line.startswith("stackhub: proxy"):
                    log.info("%s: %s", run.op.instance, line[len("stackhub: "):])
            store_scripts.append_log(folder / store_scripts.HOOKS_LOG, text)
            run.emit("log", step="hooks", text=text[-4000:])

    async def _halt(self, instance: str, folder: Path, err: StackHubError) -> None:
        """Stop the containers of a failed install (data and containers kept, logs readable).

        With ``restart: unless-stopped`` a crashing container would otherwise restart for ever
        (and again after every reboot). Not when the engine went away: that install ends
        interrupted and `retry` converges.
        """
        if isinstance(err, EngineUnavailable) or self.status.engine_down:
            return
        try:
            await self.compose.lifecycle("stop", labels.project_name(instance), folder)
        except StackHubError as stop_err:
            log.warning("%s: could not stop the containers of the failed install: %s",
                        instance, stop_err.message)

    def undo_install(self, created: list[Path]) -> Callable[[Run, StackHubError], bool]:
        """Return the undo of a fresh install: if it never reached the engine, nothing is left.

        The folders it created go first (on a full disk this frees what the journal needs),
        then the instance's record.
        """
        def undo(run: Run, err: StackHubError) -> bool:
            if run.touched_engine:
                return False
            for folder in created:
                fsutil.remove_tree_inside(folder, folder.parent)
            self.records.delete(run.op.instance)
            return True

        return undo

    async def remove(self, run: Run, *, purge: bool) -> Outcome:
        """Take an instance down and delete its record (and its folders when purging)."""
        name = run.op.instance
        folder = self.paths.instance_dir(name)
        run.step("down", 10.0, engine=True)
        has_files = (folder / COMPOSE_FILE).is_file()
        await self.compose.down(labels.project_name(name), folder if has_files else None,
                                volumes=purge)
        await faults.checkpoint("removed-containers")
        run.step("cleanup", 80.0, engine=True)
        if purge:
            for root, target in ((self.paths.instances, folder),
                                 (self.paths.appdata, self.paths.instance_data(name))):
                fsutil.remove_tree_inside(target, root)
        record = self.records.find(name)
        if not purge and record is not None and self.kept is not None:
            self.kept.remember(name, record.app_ref, record.version)
        self.records.delete(name)
        await asyncio.to_thread(self.status.refresh)
        return None

    async def lifecycle(self, run: Run, verb: str) -> Outcome:
        """Start, stop or restart an instance's containers; a failed install stays failed."""
        if verb in ("start", "restart"):  # Umbrel runs pre-start before every start
            await self._scripts(run, self.paths.instance_dir(run.op.instance), hook_only=True)
        run.step(verb, 10.0, engine=True)
        await faults.checkpoint(f"before-{verb}")
        await self.compose.lifecycle(verb, labels.project_name(run.op.instance),
                                     self.paths.instance_dir(run.op.instance))
        await asyncio.to_thread(self.status.refresh)
        if verb in ("start", "restart"):
            await self._post_hooks(run, self.paths.instance_dir(run.op.instance),
                                   (store_scripts.POST_START,))
        prior = run.prior_status
        if prior in (InstanceStatus.FAILED, InstanceStatus.INTERRUPTED):
            return InstanceStatus(prior)
        return InstanceStatus.STOPPED if verb == "stop" else InstanceStatus.RUNNING

    async def recover(self) -> dict[str, list[str]]:
        """After a restart: close interrupted operations and remove engine orphans.

        The journal half runs at once. The engine half (after-crash hooks of kinds that need
        the engine, orphans, the status cache) needs the engine: when it does not answer yet
        (StackHub started first at boot, or it hangs) that half runs in the background as soon
        as the status cache sees the engine answer (`reconciling` is that task).
        """
        closed = self.runner.recover(lambda name: self.records.find(name) is not None)
        later = [op for op in closed if kind_of(op.kind).engine]
        await self.runner.resume([op for op in closed if op not in later])
        report: dict[str, list[str]] = {"interrupted": [op.instance for op in closed],
                                        "orphans": []}
        try:
            await asyncio.to_thread(self.engine.probe, PROBE_TIMEOUT * 2)
        except StackHubError as err:
            log.warning("cannot reconcile with the engine now (%s); will once it answers",
                        err.message)
            self.reconciling = asyncio.create_task(self._reconcile_later(later))
            return report
        await self.runner.resume(later)
        try:
            report["orphans"] = await self._reconcile()
        except StackHubError as err:
            log.warning("cannot reconcile with the engine now: %s", err.message)
        return report

    async def _reconcile_later(self, later: list[OperationRead]) -> None:
        """Wait until the status cache sees the engine answer, then run the engine half."""
        while True:
            while not self.status.engine_ok:
                await asyncio.sleep(0.1)
            try:
                await self.runner.resume(later)
                later = []
                orphans = await self._reconcile()
            except StackHubError as err:  # gone again meanwhile
                log.warning("cannot reconcile with the engine yet: %s", err.message)
                await asyncio.sleep(1.0)
                continue
            log.warning("the engine answers: reconciled (orphans removed: %s)", orphans or "none")
            return

    async def _reconcile(self) -> list[str]:
        """Remove engine objects of this installation whose instance has no record; refresh."""
        containers = await asyncio.to_thread(self.engine.containers)
        networks = await asyncio.to_thread(self.engine.managed_networks)
        volumes = await asyncio.to_thread(self.engine.managed_volumes)
        # records are read after listing: an install writes its record before its containers
        known = {r.name for r in self.records.all()}
        orphans = {c.instance for c in containers if c.instance and c.instance not in known}
        orphans |= {i for _, i in networks if i and i not in known}
        for container in containers:
            if container.instance in orphans:
                await asyncio.to_thread(self.engine.remove_container, container.id, force=True)
        journaled = self.runner.journal.instances_journaled()
        for volume, instance in volumes:
            if instance and instance not in known and instance in journaled:
                # a volume of an install that never completed (its record was rolled back)
                await asyncio.to_thread(self.engine.remove_volume, volume)
        for network, instance in networks:
            if instance and instance not in known:
                with contextlib.suppress(StackHubError):  # often gone with compose down
                    await asyncio.to_thread(self.engine.remove_network, network)
        await asyncio.to_thread(self.status.refresh)
        return sorted(orphans)

    async def close(self) -> None:
        """Stop a reconciliation still waiting for the engine (at shutdown)."""
        if self.reconciling is not None and not self.reconciling.done():
            self.reconciling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reconciling

    def save_values(self, instance: str, values: dict[str, str]) -> None:
        """Keep parameter values beside the project so a reinstall reuses secrets."""
        fsutil.write_atomic(self.paths.instance_dir(instance) / "values.json",
                            json.dumps(values, indent=2, sort_keys=True), mode=0o600)


def _no_links_in_binds(resolved: ResolvedProject, data_dir: Path) -> None:
    """Refuse bind sources in the data folder that pass through a link a script made.

    Docker follows links in bind sources, so a hook could otherwise point a mount at any
    host path (the install then fails before anything reaches the engine).
    """
    for name, service in resolved.services.items():
        for volume in service.volumes:
            if volume.type != "bind" or not volume.source:
                continue
            path = Path(os.path.normpath(volume.source))
            if data_dir not in path.parents:
                continue
            current = data_dir
            for part in path.relative_to(data_dir).parts:
                current = current / part
                if current.is_symlink():
                    raise ScriptFailed(f"service {name}: the app's store scripts made "
                                       f"{current} a link; StackHub does not mount through "
                                       "links in data folders")


def _names(value: object) -> frozenset[str]:
    """Return the keys of a stored definition's mapping field (none if it is not one)."""
    return frozenset(str(k) for k in value) if isinstance(value, dict) else frozenset()
