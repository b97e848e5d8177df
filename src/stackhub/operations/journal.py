"""Read and write the operations journal: operations, their steps, and their instances' status."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from stackhub.errors import NotFound
from stackhub.operations.models import OperationPage, OperationRead, OperationState, StepRead
from stackhub.state.db import Database, now

Insert = Callable[[sqlite3.Connection], None]


@dataclass(frozen=True)
class OperationFilter:
    """Which operations to list: by instance (either one it touches), kind and state."""

    instance: str | None = None
    kind: str | None = None
    state: OperationState | None = None

    def where(self) -> tuple[str, list[object]]:
        """Return the SQL condition and its parameters."""
        clauses: list[str] = []
        params: list[object] = []
        if self.instance:
            clauses.append("(instance = ? OR target = ?)")
            params += [self.instance, self.instance]
        if self.kind:
            clauses.append("kind = ?")
            params.append(self.kind)
        if self.state:
            clauses.append("state = ?")
            params.append(self.state.value)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _seconds(start: str, end: str | None) -> float | None:
    if end is None:
        return None
    delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return round(max(0.0, delta.total_seconds()), 3)


def _operation(row: sqlite3.Row, steps: list[sqlite3.Row]) -> OperationRead:
    ends = [s["started_at"] for s in steps[1:]] + [row["finished_at"]] * bool(steps)
    return OperationRead(
        id=row["id"], instance=row["instance"], kind=row["kind"],
        state=OperationState(row["state"]), step=row["step"], progress=row["progress"],
        error=row["error"], started_at=row["started_at"], finished_at=row["finished_at"],
        target=row["target"], duration=_seconds(row["started_at"], row["finished_at"]),
        steps=[StepRead(name=s["step"], started_at=s["started_at"], finished_at=end,
                        duration=_seconds(s["started_at"], end))
               for s, end in zip(steps, ends, strict=True)])


class Journal:
    """The operations journal: every long job's rows, written before the engine is touched."""

    def __init__(self, db: Database) -> None:
        """Use `db` for every read and write."""
        self.db = db

    def start(self, kind: str, instance: str, *, status: str | None, target: str | None = None,
              create: Insert | None = None) -> OperationRead:
        """Journal a new running operation in one transaction.

        `create` inserts the instance row first (an install); otherwise the instance's current
        status is kept as the operation's prior status and replaced by `status` (if given).
        """
        op_id = uuid.uuid4().hex
        stamp = now()
        with self.db.transaction() as conn:
            prior: str | None = None
            if create is not None:
                create(conn)
            else:
                row = conn.execute("SELECT status FROM instances WHERE name = ?",
                                   (instance,)).fetchone()
                prior = None if row is None else str(row["status"])
                if row is not None and status is not None:
                    conn.execute("UPDATE instances SET status = ?, error = NULL, updated_at = ? "
                                 "WHERE name = ?", (status, stamp, instance))
            conn.execute("INSERT INTO operations (id, instance, kind, state, started_at, target,"
                         " prior_status) VALUES (?,?,?,?,?,?,?)",
                         (op_id, instance, kind, OperationState.RUNNING, stamp, target, prior))
        return self.operation(op_id)

    def step(self, op_id: str, step: str, progress: float, *, created_engine: bool = False) -> None:
        """Record an operation's current step and progress (a new step starts a step row)."""
        stamp = now()
        with self.db.transaction() as conn:
            row = conn.execute("SELECT step FROM operations WHERE id = ?", (op_id,)).fetchone()
            if row is not None and row["step"] != step:
                conn.execute("INSERT INTO operation_steps (operation, seq, step, started_at) "
                             "SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ? FROM operation_steps "
                             "WHERE operation = ?", (op_id, step, stamp, op_id))
            conn.execute("UPDATE operations SET step = ?, progress = ?, created_engine = "
                         "MAX(created_engine, ?) WHERE id = ?",
                         (step, progress, int(created_engine), op_id))

    def touched_engine(self, op_id: str) -> bool:
        """Tell whether an operation got as far as creating engine objects."""
        rows = self.db.query("SELECT created_engine FROM operations WHERE id = ?", (op_id,))
        return bool(rows and rows[0][0])

    def finish(self, op_id: str, state: OperationState, *, instance_status: str | None,
               error: str | None = None, target_status: str | None = None) -> None:
        """Close an operation and set its instances' status in one transaction."""
        stamp = now()
        with self.db.transaction() as conn:
            row = conn.execute("SELECT instance, target FROM operations WHERE id = ?",
                               (op_id,)).fetchone()
            conn.execute("UPDATE operations SET state = ?, error = ?, finished_at = ?, progress ="
                         " CASE WHEN ? = 'succeeded' THEN 100 ELSE progress END WHERE id = ?",
                         (state.value, error, stamp, state.value, op_id))
            if row is None:
                return
            for name, status in ((row["instance"], instance_status),
                                 (row["target"], target_status)):
                if name is not None and status is not None:
                    conn.execute("UPDATE instances SET status = ?, error = ?, updated_at = ? "
                                 "WHERE name = ?", (status, error, stamp, name))

    def prior_status(self, op_id: str) -> str | None:
        """Return the status an operation's instance had when it started (None for installs)."""
        rows = self.db.query("SELECT prior_status FROM operations WHERE id = ?", (op_id,))
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def _steps(self, ids: list[str]) -> dict[str, list[sqlite3.Row]]:
        found: dict[str, list[sqlite3.Row]] = {i: [] for i in ids}
        if not ids:
            return found
        marks = ",".join("?" * len(ids))
        sql = f"SELECT * FROM operation_steps WHERE operation IN ({marks}) ORDER BY operation, seq"  # noqa: S608 (placeholders only)
        for row in self.db.query(sql, tuple(ids)):
            found[row["operation"]].append(row)
        return found

    def _read(self, rows: list[sqlite3.Row]) -> list[OperationRead]:
        steps = self._steps([r["id"] for r in rows])
        return [_operation(r, steps[r["id"]]) for r in rows]

    def operation(self, op_id: str) -> OperationRead:
        """Return one operation or raise NotFound."""
        rows = self.db.query("SELECT * FROM operations WHERE id = ?", (op_id,))
        if not rows:
            raise NotFound(f"no operation {op_id!r}")
        return self._read(rows)[0]

    def page(self, where: OperationFilter, *, limit: int = 50, offset: int = 0) -> OperationPage:
        """Return one page of matching operations, newest first, and how many match."""
        condition, params = where.where()  # fixed clauses with placeholders, no input text
        count = f"SELECT COUNT(*) FROM operations{condition}"  # noqa: S608
        total = int(self.db.query(count, tuple(params))[0][0])
        select = (f"SELECT * FROM operations{condition} "  # noqa: S608
                  "ORDER BY started_at DESC, rowid DESC LIMIT ? OFFSET ?")
        rows = self.db.query(select, (*params, limit, offset))
        return OperationPage(items=self._read(rows), total=total, limit=limit, offset=offset)

    def operations(self, instance: str | None = None, limit: int = 50) -> list[OperationRead]:
        """Return recent operations, newest first."""
        return self.page(OperationFilter(instance=instance), limit=limit).items

    def running(self) -> list[OperationRead]:
        """Return operations whose journal says they are still running."""
        rows = self.db.query("SELECT * FROM operations WHERE state = ?",
                             (OperationState.RUNNING.value,))
        return self._read(rows)

    def instances_journaled(self) -> set[str]:
        """Return every instance name the journal has seen (as instance or target)."""
        rows = self.db.query("SELECT instance, target FROM operations")
        return {r[0] for r in rows} | {r[1] for r in rows if r[1]}
