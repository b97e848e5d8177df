"""List schema migrations in order; each runs once, tracked by PRAGMA user_version."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: instances and the operations journal
    """
    CREATE TABLE instances (
        name TEXT PRIMARY KEY,
        app_ref TEXT NOT NULL,
        store TEXT,
        format TEXT NOT NULL,
        version TEXT NOT NULL,
        revision INTEGER,
        status TEXT NOT NULL,
        main_service TEXT,
        main_port INTEGER,
        main_path TEXT,
        ports TEXT NOT NULL DEFAULT '[]',
        parameters TEXT NOT NULL DEFAULT '{}',
        secret_names TEXT NOT NULL DEFAULT '[]',
        definition TEXT NOT NULL,
        error TEXT,
        update_available TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE operations (
        id TEXT PRIMARY KEY,
        instance TEXT NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        step TEXT NOT NULL DEFAULT '',
        progress REAL NOT NULL DEFAULT 0,
        error TEXT,
        created_engine INTEGER NOT NULL DEFAULT 0,
        started_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE INDEX operations_instance ON operations(instance, started_at);
    CREATE INDEX operations_state ON operations(state);
    CREATE TABLE stores (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        source TEXT NOT NULL,
        branch TEXT,
        position INTEGER NOT NULL DEFAULT 100,
        created_at TEXT NOT NULL
    );
    """,
    # 2: catalog index (reserved for the store/catalog work)
    "SELECT 1",
    # 3: users, sessions, tokens, audit (reserved for the auth work)
    "SELECT 1",
]
