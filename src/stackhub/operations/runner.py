"""Run every long job as a journaled operation: claim, steps, events, end, crash recovery.

An operation kind says what status its instance shows while it runs, after a failure and
after a crash; the work is a coroutine of steps given a `Run` handle. The runner owns the
rest: one operation at a time per instance (409 otherwise), the journal rows written before
anything else happens, a `step` event with every journaled step, the `finished` event, and
closing whatever a crash left running. Add a kind with `register`; see `apps/flows.py` for
the steps of install, remove, start, stop and restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from stackhub.errors import Conflict, EngineError, EngineUnavailable, StackHubError
from stackhub.events import Event, EventBus
from stackhub.operations.journal import Insert, Journal
from stackhub.operations.models import InstanceStatus, OperationRead, OperationState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OperationKind:
    """What an operation kind does to its instance's status, and how it reads in messages.

    A status of None keeps the one the instance had when the operation started. A kind that
    needs the engine is refused before it is journaled while the engine is known to be down,
    and ends as interrupted, not failed, if the engine goes away while it runs.
    """

    name: str
    what: str
    running: InstanceStatus | None
    failed: InstanceStatus | None
    interrupted: InstanceStatus | None
    hint: str = "retry it"
    engine: bool = True


KINDS: dict[str, OperationKind] = {}


def register(kind: OperationKind) -> OperationKind:
    """Make a kind known to the runner and to crash recovery; return it."""
    KINDS[kind.name] = kind
    return kind


def kind_of(name: str) -> OperationKind:
    """Return a registered kind; an unknown one (a newer StackHub's) ends as interrupted."""
    return KINDS.get(name) or OperationKind(name, f"a {name} operation",
                                            InstanceStatus.INTERRUPTED, InstanceStatus.FAILED,
                                            InstanceStatus.INTERRUPTED)


Outcome = InstanceStatus | None
"""What a successful operation leaves its instance as (None: unchanged, or gone)."""


class Run:
    """The handle an operation's steps use: journal a step, publish events."""

    def __init__(self, runner: Runner, op: OperationRead) -> None:
        """Bind to one journaled operation."""
        self.runner = runner
        self.op = op
        self.kind = kind_of(op.kind)
        self.error: StackHubError | None = None
        self.outages = runner.watch.outages if runner.watch is not None else 0

    def step(self, name: str, progress: float, *, engine: bool = False) -> None:
        """Journal the current step (and whether engine objects may now exist), then tell."""
        self.runner.journal.step(self.op.id, name, progress, created_engine=engine)
        self.emit("step", step=name, progress=progress)

    def emit(self, kind: str, **data: object) -> None:
        """Publish an event of this operation (not journaled: progress within a step)."""
        self.runner.emit(self.op, kind, **data)

    def emit_threadsafe(self, kind: str, **data: object) -> None:
        """Publish an event from a worker thread (pull progress)."""
        loop = self.runner.loop
        if loop is not None:
            loop.call_soon_threadsafe(lambda: self.emit(kind, **data))

    @property
    def prior_status(self) -> str | None:
        """Return the status the instance had when the operation started (None: new)."""
        return self.runner.journal.prior_status(self.op.id)

    @property
    def touched_engine(self) -> bool:
        """Tell whether a step said engine objects may exist."""
        return self.runner.journal.touched_engine(self.op.id)


Work = Callable[[Run], Awaitable[Outcome]]
Undo = Callable[[Run, StackHubError], bool]
"""Clean up after a failure; return True if the instance is gone (its record deleted)."""
Prepare = Callable[[Run], None]
AfterCrash = Callable[[OperationRead], Awaitable[None]]


class EngineWatch(Protocol):
    """What the runner asks about the engine (the status cache answers)."""

    outages: int

    def check_engine(self) -> None: ...
    def verify(self) -> bool: ...


class Runner:
    """Own the background tasks of operations, one at a time per instance."""

    def __init__(self, *, journal: Journal, bus: EventBus,
                 watch: EngineWatch | None = None) -> None:
        """Journal to `journal`, publish on `bus`, ask `watch` whether the engine is there."""
        self.journal = journal
        self.bus = bus
        self.watch = watch
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._held: set[str] = set()
        self._pulls: dict[str, dict[str, dict[str, object]]] = {}  # op -> image -> last event
        self._runs: dict[str, Run] = {}
        self._after_crash: dict[str, AfterCrash] = {}
        self._tails: dict[str, asyncio.Future[None]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- claiming ---------------------------------------------------------------------------
    def busy(self, instance: str) -> bool:
        """Tell whether an operation on `instance` is running (or starting) in this process."""
        task = self.tasks.get(instance)
        return instance in self._held or (task is not None and not task.done())

    def claim(self, *instances: str) -> None:
        """Refuse (409) if any of `instances` is busy with another operation."""
        for name in instances:
            if self.busy(name):
                raise Conflict(f"instance {name!r} is busy with another operation; wait for it "
                               "to finish")

    def check_engine(self, kind: OperationKind) -> None:
        """Refuse (EngineUnavailable, 503) a kind that needs the engine while it is known down."""
        if kind.engine and self.watch is not None:
            self.watch.check_engine()

    async def ensure_engine(self, kind: OperationKind) -> None:
        """Like check_engine, but first ask the engine once more if it is known down.

        A request right after the engine came back then need not wait for the cache's next
        re-list; with the engine still away the list fails at once and so does the request.
        """
        watch = self.watch
        if kind.engine and watch is not None:
            try:
                watch.check_engine()
            except EngineUnavailable:
                await asyncio.to_thread(watch.verify)
                watch.check_engine()

    def begin(self, kind: OperationKind, instance: str, *, target: str | None = None,
              create: Insert | None = None) -> OperationRead:
        """Claim the instance(s) and journal a running operation, before anything else happens.

        `create` inserts the instance row in the same transaction (an install). The claim
        holds until `start` or `run` hands the operation a task. Nothing is journaled while
        the engine is known to be down (for kinds that need it): that raises EngineUnavailable.
        """
        names = [instance] if target is None or target == instance else [instance, target]
        self.claim(*names)
        self.check_engine(kind)
        op = self.journal.start(kind.name, instance, status=kind.running, target=target,
                                create=create)
        self._held.update(names)
        return op

    def _names(self, op: OperationRead) -> list[str]:
        return [op.instance] if op.target in (None, op.instance) else [op.instance, str(op.target)]

    # -- running ----------------------------------------------------------------------------
    def start(self, op: OperationRead, work: Work, *, undo: Undo | None = None,
              prepare: Prepare | None = None) -> asyncio.Task[None]:
        """Run `work` in the background; `prepare` runs first, here, and raises its error.

        A StackHubError from `prepare` (e.g. the disk is full while writing project files)
        ends the operation as failed, through `undo`, before this raises it to the caller.
        """
        run = Run(self, op)
        self.loop = asyncio.get_running_loop()
        if prepare is not None:
            try:
                prepare(run)
            except StackHubError as err:
                self._fail(run, err, undo)
                self.release(op)
                raise
        task = asyncio.create_task(self._drive(run, work, undo), name=f"op-{op.id}")
        for name in self._names(op):
            self.tasks[name] = task
        self.release(op)
        task.add_done_callback(lambda _t: self._forget(op, task))
        self._runs[op.id] = run
        return task

    async def run(self, op: OperationRead, work: Work, *, undo: Undo | None = None) -> None:
        """Run `work` and wait for it; raise its error after it is journaled.

        The operation goes on if the caller goes away (a closed HTTP request).
        """
        task = self.start(op, work, undo=undo)
        run = self._runs[op.id]
        await asyncio.shield(task)
        if run.error is not None:
            raise run.error

    def release(self, op: OperationRead) -> None:
        """Let go of the claim `begin` took (`start` does; tests simulate a crash with it)."""
        for name in self._names(op):
            self._held.discard(name)

    def linger(self, instance: str, work: Awaitable[None]) -> asyncio.Future[None]:
        """Finish `work` (clean-up an operation left to do) after the operation has ended.

        The instance's next operation waits for it before its first step, so nothing it
        does meets the clean-up half done. `work` logs its own failures; whatever a crash
        stops it from finishing is for the kind's start-up sweep.
        """
        tail = asyncio.ensure_future(work)
        self._tails[instance] = tail

        def done(_t: asyncio.Future[None]) -> None:
            if self._tails.get(instance) is tail:
                del self._tails[instance]

        tail.add_done_callback(done)
        return tail

    async def settled(self, *instances: str) -> None:
        """Wait until the clean-ups lingering after earlier operations on `instances` end."""
        for name in instances:
            tail = self._tails.get(name)
            if tail is not None:
                await asyncio.wait([tail])

    def _forget(self, op: OperationRead, task: asyncio.Task[None]) -> None:
        for name in self._names(op):
            if self.tasks.get(name) is task:
                del self.tasks[name]
        self._runs.pop(op.id, None)

    async def _drive(self, run: Run, work: Work, undo: Undo | None) -> None:
        """Run the steps and journal how they ended: succeeded, failed or interrupted."""
        try:
            await self.settled(*self._names(run.op))
            outcome = await work(run)
        except asyncio.CancelledError:
            self._interrupted(run)
            raise
        except StackHubError as err:
            self._fail(run, await self._explain(run, err), undo)
            return
        except Exception as err:
            log.exception("%s %s crashed", run.op.kind, run.op.id)
            self._fail(run, EngineError(f"internal error: {err}"), undo)
            return
        self.journal.finish(run.op.id, OperationState.SUCCEEDED, instance_status=outcome)
        self.emit(run.op, "finished", state="succeeded", progress=100.0)

    def _status(self, run: Run, status: InstanceStatus | None) -> str | None:
        """Return the status to set: the kind's, else the prior one if the kind changed it."""
        if status is not None:
            return status.value
        return run.prior_status if run.kind.running is not None else None

    async def _explain(self, run: Run, err: StackHubError) -> StackHubError:
        """Return EngineUnavailable instead of an engine error if the engine went away meanwhile.

        A restarting engine first closes its socket, then stops containers: an install may see
        them exit (or compose may lose the connection in its own words) before the cache has
        noticed the outage, so an engine error is checked with one more container list.
        """
        watch = self.watch
        if watch is None or not run.kind.engine or not isinstance(
                err, EngineError | EngineUnavailable):
            return err
        answers = await asyncio.to_thread(watch.verify)  # the cache learns of an outage now
        if isinstance(err, EngineUnavailable):
            return err
        if watch.outages != run.outages or not answers:
            lost = EngineUnavailable(f"the Docker engine went away ({err.message})")
            lost.__cause__ = err
            return lost
        return err

    def _fail(self, run: Run, err: StackHubError, undo: Undo | None) -> None:
        """Journal a failure (after `undo`), mark the instance(s), tell subscribers.

        An operation that needs the engine and failed because the engine became unreachable
        is journaled as interrupted instead, without `undo`: retrying it converges, as after a
        crash of StackHub.
        """
        run.error = err
        if isinstance(err, EngineUnavailable) and run.kind.engine:
            message = (f"the Docker engine became unreachable during {run.kind.what}; "
                       f"{run.kind.hint} once it is back ({err.message})")
            self._interrupted(run, message)
            self.emit(run.op, "finished", state="interrupted", error=message, code=err.code)
            return
        gone = undo(run, err) if undo is not None else False
        status = None if gone else self._status(run, run.kind.failed)
        target = InstanceStatus.FAILED.value if run.op.target not in (None, run.op.instance) \
            else None
        self.journal.finish(run.op.id, OperationState.FAILED, instance_status=status,
                            error=err.message, target_status=target)
        self.emit(run.op, "finished", state="failed", error=err.message, code=err.code)

    def _interrupted(self, run: Run, error: str | None = None) -> None:
        """Journal that the server stopped (or the engine went away) while the operation ran."""
        status = self._status(run, run.kind.interrupted)
        target = InstanceStatus.INTERRUPTED.value if run.op.target not in (
            None, run.op.instance) else None
        self.journal.finish(run.op.id, OperationState.INTERRUPTED, instance_status=status,
                            error=error or f"the server stopped during {run.kind.what}; "
                            f"{run.kind.hint}", target_status=target)

    async def shutdown(self) -> None:
        """Cancel every running operation (each is journaled as interrupted) and wait."""
        tasks = {id(t): t for t in self.tasks.values()}.values()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- events -----------------------------------------------------------------------------
    def emit(self, op: OperationRead, kind: str, **data: object) -> None:
        """Publish an operation event (and remember the last pull event per image)."""
        payload: dict[str, object] = {"operation": op.id, "instance": op.instance,
                                      "op_kind": op.kind, **data}
        if op.target is not None:
            payload["target"] = op.target
        if kind == "pull":
            self._pulls.setdefault(op.id, {})[str(data["image"])] = payload
        elif kind == "finished":
            self._pulls.pop(op.id, None)
        self.bus.publish(Event("operation", op.instance, kind, payload))
        if kind == "finished" and op.target not in (None, op.instance):
            # the target's own page follows its instance events: its status ends with this
            self.bus.publish(Event("instance", str(op.target), "operation", payload))

    def pulls(self, op_id: str) -> list[dict[str, object]]:
        """Return the last pull event of each image of a running operation, for late followers."""
        return list(self._pulls.get(op_id, {}).values())

    # -- crash recovery ---------------------------------------------------------------------
    def after_crash(self, kind: str, hook: AfterCrash) -> None:
        """Have `hook` run at start for each `kind` operation a crash left running.

        For kinds that leave something to put back (a backup that stopped its instance must
        start it again); the hook runs after the journal is closed, and its errors are logged.
        """
        self._after_crash[kind] = hook

    async def resume(self, closed: list[OperationRead]) -> None:
        """Run the after-crash hooks of the operations `recover` closed."""
        for op in closed:
            hook = self._after_crash.get(op.kind)
            if hook is None:
                continue
            try:
                await hook(op)
            except StackHubError as err:
                log.warning("after the crash of %s %s: %s", op.kind, op.id, err.message)

    def recover(self, exists: Callable[[str], bool]) -> list[OperationRead]:
        """Close operations a crash left running; return them (the journal half of recovery).

        Each instance gets its kind's interrupted status (or back the status it had, for
        kinds that keep it), a target instance `interrupted`; instances gone stay gone.
        """
        closed: list[OperationRead] = []
        for op in self.journal.running():
            kind = kind_of(op.kind)
            status = kind.interrupted.value if kind.interrupted is not None \
                else self.journal.prior_status(op.id) if kind.running is not None else None
            target = InstanceStatus.INTERRUPTED.value if op.target not in (None, op.instance) \
                and exists(str(op.target)) else None
            self.journal.finish(op.id, OperationState.INTERRUPTED,
                                instance_status=status if exists(op.instance) else None,
                                error=f"StackHub stopped while this operation ran; {kind.hint}",
                                target_status=target)
            closed.append(op)
        return closed
