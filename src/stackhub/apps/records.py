"""Read and write instance and operation records in SQLite."""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any

from stackhub.apps.models import OperationRead, OperationState, PortMapping
from stackhub.errors import AlreadyExists, NotFound
from stackhub.state.db import Database, now


@dataclass
class InstanceRecord:
    """An instance row, decoded."""

    name: str
    app_ref: str
    store: str | None
    format: str
    version: str
    revision: int | None
    status: str
    main_service: str | None
    main_port: int | None
    main_path: str | None
    ports: list[PortMapping]
    parameters: dict[str, str]
    secret_names: list[str]
    definition: dict[str, Any]
    error: str | None
    update_available: str | None
    created_at: str
    updated_at: str


def _instance(row: sqlite3.Row) -> InstanceRecord:
    return InstanceRecord(
        name=row["name"], app_ref=row["app_ref"], store=row["store"], format=row["format"],
        version=row["version"], revision=row["revision"], status=row["status"],
        main_service=row["main_service"], main_port=row["main_port"], main_path=row["main_path"],
        ports=[PortMapping(**p) for p in json.loads(row["ports"])],
        parameters=json.loads(row["parameters"]), secret_names=json.loads(row["secret_names"]),
        definition=json.loads(row["definition"]), error=row["error"],
        update_available=row["update_available"], created_at=row["created_at"],
        updated_at=row["updated_at"])


def _operation(row: sqlite3.Row) -> OperationRead:
    return OperationRead(id=row["id"], instance=row["instance"], kind=row["kind"],
                         state=OperationState(row["state"]), step=row["step"],
                         progress=row["progress"], error=row["error"],
                         started_at=row["started_at"], finished_at=row["finished_at"])


class Records:
    """The apps domain's access to its tables."""

    def __init__(self, db: Database) -> None:
        """Use `db` for every read and write."""
        self.db = db

    def get(self, name: str) -> InstanceRecord:
        """Return one instance or raise NotFound."""
        rows = self.db.query("SELECT * FROM instances WHERE name = ?", (name,))
        if not rows:
            raise NotFound(f"no instance named {name!r}")
        return _instance(rows[0])

    def find(self, name: str) -> InstanceRecord | None:
        """Return one instance or None."""
        rows = self.db.query("SELECT * FROM instances WHERE name = ?", (name,))
        return _instance(rows[0]) if rows else None

    def all(self) -> list[InstanceRecord]:
        """Return every instance, by name."""
        return [_instance(r) for r in self.db.query("SELECT * FROM instances ORDER BY name")]

    def secret_values(self) -> frozenset[str]:
        """Return every instance's secret parameter values (for masking, never for output)."""
        return frozenset(record.parameters[name] for record in self.all()
                         for name in record.secret_names if record.parameters.get(name))

    def held_ports(self, *, exclude: str | None = None) -> dict[int, str]:
        """Return host ports held by instances: port -> 'instance NAME'."""
        held: dict[int, str] = {}
        for record in self.all():
            if record.name != exclude:
                for port in record.ports:
                    held[port.host_port] = f"instance {record.name}"
        return held

    def create(self, record: InstanceRecord, operation_kind: str) -> OperationRead:
        """Insert a new instance and its first operation in one transaction."""
        op_id = uuid.uuid4().hex
        stamp = now()
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT INTO instances (name, app_ref, store, format, version, revision,"
                    " status, main_service, main_port, main_path, ports, parameters,"
                    " secret_names, definition, error, created_at, updated_at) VALUES"
                    " (?,?,?,?,?,?,?,?,?,?,?,?,?,?,NULL,?,?)",
                    (record.name, record.app_ref, record.store, record.format, record.version,
                     record.revision, record.status, record.main_service, record.main_port,
                     record.main_path, json.dumps([p.model_dump() for p in record.ports]),
                     json.dumps(record.parameters), json.dumps(record.secret_names),
                     json.dumps(record.definition), stamp, stamp))
                self._insert_op(conn, op_id, record.name, operation_kind, stamp)
        except sqlite3.IntegrityError as err:
            raise AlreadyExists(f"an instance named {record.name!r} already exists") from err
        return self.operation(op_id)

    def _insert_op(self, conn: sqlite3.Connection, op_id: str, instance: str, kind: str,
                   stamp: str) -> None:
        conn.execute("INSERT INTO operations (id, instance, kind, state, started_at) VALUES"
                     " (?,?,?,?,?)", (op_id, instance, kind, OperationState.RUNNING, stamp))

    def start_operation(self, instance: str, kind: str, status: str) -> OperationRead:
        """Journal a new operation on an existing instance and set its status."""
        op_id = uuid.uuid4().hex
        stamp = now()
        with self.db.transaction() as conn:
            conn.execute("UPDATE instances SET status = ?, error = NULL, updated_at = ? "
                         "WHERE name = ?", (status, stamp, instance))
            self._insert_op(conn, op_id, instance, kind, stamp)
        return self.operation(op_id)

    def operation(self, op_id: str) -> OperationRead:
        """Return one operation or raise NotFound."""
        rows = self.db.query("SELECT * FROM operations WHERE id = ?", (op_id,))
        if not rows:
            raise NotFound(f"no operation {op_id!r}")
        return _operation(rows[0])

    def operations(self, instance: str | None = None, limit: int = 50) -> list[OperationRead]:
        """Return recent operations, newest first."""
        if instance:
            rows = self.db.query("SELECT * FROM operations WHERE instance = ? ORDER BY "
                                 "started_at DESC LIMIT ?", (instance, limit))
        else:
            rows = self.db.query("SELECT * FROM operations ORDER BY started_at DESC LIMIT ?",
                                 (limit,))
        return [_operation(r) for r in rows]

    def running_operations(self) -> list[OperationRead]:
        """Return operations whose journal says they are still running."""
        rows = self.db.query("SELECT * FROM operations WHERE state = ?",
                             (OperationState.RUNNING.value,))
        return [_operation(r) for r in rows]

    def step(self, op_id: str, step: str, progress: float, *, created_engine: bool = False) -> None:
        """Record an operation's current step and progress."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE operations SET step = ?, progress = ?, created_engine = "
                         "MAX(created_engine, ?) WHERE id = ?",
                         (step, progress, int(created_engine), op_id))

    def touched_engine(self, op_id: str) -> bool:
        """Tell whether an operation got as far as creating engine objects."""
        rows = self.db.query("SELECT created_engine FROM operations WHERE id = ?", (op_id,))
        return bool(rows and rows[0][0])

    def finish(self, op_id: str, state: OperationState, *, instance_status: str | None,
               error: str | None = None) -> None:
        """Close an operation and set its instance's status in one transaction."""
        stamp = now()
        with self.db.transaction() as conn:
            row = conn.execute("SELECT instance FROM operations WHERE id = ?", (op_id,)).fetchone()
            conn.execute("UPDATE operations SET state = ?, error = ?, finished_at = ?, progress ="
                         " CASE WHEN ? = 'succeeded' THEN 100 ELSE progress END WHERE id = ?",
                         (state.value, error, stamp, state.value, op_id))
            if row is not None and instance_status is not None:
                conn.execute("UPDATE instances SET status = ?, error = ?, updated_at = ? WHERE "
                             "name = ?", (instance_status, error, stamp, row["instance"]))

    def delete(self, name: str) -> None:
        """Delete an instance record (its operations stay in the journal)."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM instances WHERE name = ?", (name,))

    def set_update_available(self, name: str, version: str | None) -> None:
        """Flag (or clear) a newer catalog version for an instance."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE instances SET update_available = ? WHERE name = ?",
                         (version, name))
