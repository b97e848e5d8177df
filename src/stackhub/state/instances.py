"""Read and write instance records in SQLite (operations: `operations/journal.py`)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from stackhub.errors import AlreadyExists, NotFound
from stackhub.state.db import Database, now


class PortMapping(BaseModel):
    """A published host port of an instance."""

    service: str
    host_port: int
    container_port: int
    protocol: str = "tcp"


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

    def insert(self, conn: sqlite3.Connection, record: InstanceRecord) -> None:
        """Insert a new instance inside the caller's transaction (the journal's, at install)."""
        stamp = now()
        try:
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
        except sqlite3.IntegrityError as err:
            raise AlreadyExists(f"an instance named {record.name!r} already exists") from err

    def replace(self, record: InstanceRecord) -> None:
        """Overwrite an instance's definition and values, keeping its status (a restore)."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE instances SET app_ref = ?, store = ?, format = ?, version = ?,"
                " revision = ?, main_service = ?, main_port = ?, main_path = ?, ports = ?,"
                " parameters = ?, secret_names = ?, definition = ?, error = NULL,"
                " updated_at = ? WHERE name = ?",
                (record.app_ref, record.store, record.format, record.version, record.revision,
                 record.main_service, record.main_port, record.main_path,
                 json.dumps([p.model_dump() for p in record.ports]),
                 json.dumps(record.parameters), json.dumps(record.secret_names),
                 json.dumps(record.definition), now(), record.name))

    def set_status(self, name: str, status: str) -> None:
        """Set an instance's journaled status (a restore as a new instance that came up)."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE instances SET status = ?, error = NULL, updated_at = ? "
                         "WHERE name = ?", (status, now(), name))

    def delete(self, name: str) -> None:
        """Delete an instance record (its operations stay in the journal)."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM instances WHERE name = ?", (name,))

    def set_update_available(self, name: str, version: str | None) -> None:
        """Flag (or clear) a newer catalog version for an instance."""
        with self.db.transaction() as conn:
            conn.execute("UPDATE instances SET update_available = ? WHERE name = ?",
                         (version, name))
