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
    # 2: catalog index: store sync state, one row per catalog app, full-text search
    """
    ALTER TABLE stores ADD COLUMN trusted INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE stores ADD COLUMN last_sync TEXT;
    ALTER TABLE stores ADD COLUMN last_attempt TEXT;
    ALTER TABLE stores ADD COLUMN last_error TEXT;
    ALTER TABLE stores ADD COLUMN revision TEXT;
    ALTER TABLE stores ADD COLUMN index_key TEXT;
    ALTER TABLE stores ADD COLUMN snapshot TEXT;
    ALTER TABLE stores ADD COLUMN root TEXT NOT NULL DEFAULT '';
    ALTER TABLE stores ADD COLUMN app_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE stores ADD COLUMN app_errors TEXT NOT NULL DEFAULT '[]';
    CREATE TABLE catalog_apps (
        store TEXT NOT NULL REFERENCES stores(name) ON DELETE CASCADE,
        app TEXT NOT NULL,
        name TEXT NOT NULL,
        format TEXT NOT NULL,
        version TEXT NOT NULL,
        revision INTEGER,
        title TEXT NOT NULL DEFAULT '{}',
        tagline TEXT NOT NULL DEFAULT '{}',
        description TEXT NOT NULL DEFAULT '{}',
        categories TEXT NOT NULL DEFAULT '[]',
        installable INTEGER NOT NULL,
        problems TEXT NOT NULL DEFAULT '[]',
        definition TEXT NOT NULL,
        icon TEXT,
        screenshots TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (store, app)
    );
    CREATE TABLE catalog_categories (
        store TEXT NOT NULL,
        app TEXT NOT NULL,
        category TEXT NOT NULL,
        PRIMARY KEY (store, app, category),
        FOREIGN KEY (store, app) REFERENCES catalog_apps(store, app) ON DELETE CASCADE
    );
    CREATE INDEX catalog_categories_category ON catalog_categories(category);
    CREATE VIRTUAL TABLE catalog_fts USING fts5(
        store UNINDEXED, app UNINDEXED, title, tagline, description,
        tokenize = 'trigram'
    )
    """,
    # 3: users, sessions, API tokens, member grants, settings, audit log
    """
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
        password_hash TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        totp_secret TEXT,
        totp_pending TEXT,
        totp_last_step INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE recovery_codes (
        username TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        digest TEXT NOT NULL,
        used_at TEXT,
        PRIMARY KEY (username, digest)
    );
    CREATE TABLE sessions (
        digest TEXT PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        username TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        pending INTEGER NOT NULL DEFAULT 0,
        csrf TEXT NOT NULL,
        failures INTEGER NOT NULL DEFAULT 0,
        ip TEXT NOT NULL DEFAULT '',
        user_agent TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE INDEX sessions_username ON sessions(username);
    CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        digest TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        last_used TEXT,
        expires_at TEXT
    );
    CREATE INDEX api_tokens_username ON api_tokens(username);
    CREATE TABLE grants (
        username TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        instance TEXT NOT NULL,
        PRIMARY KEY (username, instance)
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        ip TEXT NOT NULL DEFAULT '',
        success INTEGER NOT NULL DEFAULT 1,
        details TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX audit_at ON audit(at)
    """,
    # 2: operations name a second instance (clone, restore as new), remember the status they
    # found, and keep each step's start for the activity view
    """
    ALTER TABLE operations ADD COLUMN target TEXT;
    ALTER TABLE operations ADD COLUMN prior_status TEXT;
    CREATE INDEX operations_target ON operations(target, started_at);
    CREATE INDEX operations_started ON operations(started_at);
    CREATE TABLE operation_steps (
        operation TEXT NOT NULL,
        seq INTEGER NOT NULL,
        step TEXT NOT NULL,
        started_at TEXT NOT NULL,
        PRIMARY KEY (operation, seq)
    )
    """,
    # 5: the subnet of each instance network (apps/subnets.py), freed with the instance's row
    """
    CREATE TABLE instance_subnets (
        instance TEXT NOT NULL REFERENCES instances(name) ON DELETE CASCADE,
        network TEXT NOT NULL,
        subnet TEXT NOT NULL,
        PRIMARY KEY (instance, network, subnet)
    )
    """,
    # proxy: custom domains bound to instances, and the gateway's settings (base domain)
    """
    CREATE TABLE domains (
        name TEXT PRIMARY KEY,
        instance TEXT NOT NULL,
        state TEXT NOT NULL,
        error TEXT,
        issuer TEXT,
        expires_at TEXT,
        checked_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX domains_instance ON domains(instance);
    CREATE TABLE gateway_settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )
    """,
    # 7: backup repositories (passwords and keys live in secrets/backup/, never here)
    """
    CREATE TABLE backup_repositories (
        name TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        kind TEXT NOT NULL,
        is_default INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    )
    """,
    # updates (issue 13): settings revisions of each instance, and what update a check found
    """
    CREATE TABLE instance_revisions (
        instance TEXT NOT NULL REFERENCES instances(name) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        reason TEXT NOT NULL,
        version TEXT NOT NULL,
        parameters TEXT NOT NULL,
        definition TEXT NOT NULL,
        snapshot TEXT,
        created_at TEXT NOT NULL,
        PRIMARY KEY (instance, number)
    );
    CREATE TABLE instance_updates (
        instance TEXT PRIMARY KEY REFERENCES instances(name) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        latest_version TEXT NOT NULL,
        images TEXT NOT NULL,
        checked_at TEXT NOT NULL
    )
    """,
    # proxy (issue 11): apps behind StackHub's sign-in (forward auth), and the per-host
    # gateway sessions a signed-in user gets on a protected app's name (digests only)
    """
    CREATE TABLE instance_protection (
        instance TEXT PRIMARY KEY REFERENCES instances(name) ON DELETE CASCADE,
        created_at TEXT NOT NULL
    );
    CREATE TABLE gateway_sessions (
        digest TEXT PRIMARY KEY,
        session_id TEXT NOT NULL,
        username TEXT NOT NULL,
        host TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );
    CREATE INDEX gateway_sessions_session ON gateway_sessions(session_id)
    """,
    # catalog (issue 16): a per-store cap on what a sync keeps (NULL: the default, 300 MB)
    """
    ALTER TABLE stores ADD COLUMN max_bytes INTEGER
    """,
    # backups (issue 12): schedules and retention per instance, the last backup of each
    # instance (good or failed), and the periodic `restic check` of each repository
    """
    CREATE TABLE backup_schedules (
        instance TEXT PRIMARY KEY REFERENCES instances(name) ON DELETE CASCADE,
        every TEXT NOT NULL,
        at TEXT NOT NULL,
        weekday INTEGER,
        repository TEXT,
        keep_last INTEGER NOT NULL DEFAULT 0,
        keep_daily INTEGER NOT NULL DEFAULT 0,
        keep_weekly INTEGER NOT NULL DEFAULT 0,
        keep_monthly INTEGER NOT NULL DEFAULT 0,
        enabled INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE backup_state (
        instance TEXT PRIMARY KEY REFERENCES instances(name) ON DELETE CASCADE,
        last_success_at TEXT,
        last_snapshot TEXT,
        last_repository TEXT,
        last_failure_at TEXT,
        last_error TEXT,
        last_scheduled_at TEXT
    );
    CREATE TABLE backup_checks (
        repository TEXT PRIMARY KEY,
        checked_at TEXT NOT NULL,
        ok INTEGER NOT NULL,
        output TEXT NOT NULL
    )
    """,
    # apps (issue 17): what a removal without purge kept, by instance name
    """
    CREATE TABLE kept_data (
        name TEXT PRIMARY KEY,
        app_ref TEXT NOT NULL,
        version TEXT NOT NULL,
        removed_at TEXT NOT NULL
    )
    """,
    # catalog (issue 17): featured apps and when each app last changed, for the store's rows
    """
    ALTER TABLE catalog_apps ADD COLUMN featured INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE catalog_apps ADD COLUMN updated_at TEXT;
    CREATE INDEX catalog_apps_updated ON catalog_apps(updated_at)
    """,
    # notifications (issue 13): the bell's list (one open notification per key), each
    # user's read marks, and the delivery channels (webhook, e-mail; secrets in secrets/notify/)
    """
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        severity TEXT NOT NULL,
        params TEXT NOT NULL,
        link TEXT NOT NULL,
        instance TEXT,
        admin_only INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        resolved_at TEXT
    );
    CREATE INDEX notifications_key ON notifications(key, resolved_at);
    CREATE TABLE notification_reads (
        notification INTEGER NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
        user TEXT NOT NULL,
        read_at TEXT NOT NULL,
        PRIMARY KEY (notification, user)
    );
    CREATE TABLE notify_channels (
        kind TEXT PRIMARY KEY,
        enabled INTEGER NOT NULL,
        config TEXT NOT NULL,
        last_at TEXT,
        last_ok INTEGER,
        last_error TEXT,
        updated_at TEXT NOT NULL
    )
    """,
    # updates (issue 13): auto-update per instance (off by default; a weekly or daily window;
    # digest-only or versions too) and the images an update replaced, kept 7 days for a
    # rollback, then pruned unless a container uses them
    """
    CREATE TABLE auto_updates (
        instance TEXT PRIMARY KEY REFERENCES instances(name) ON DELETE CASCADE,
        enabled INTEGER NOT NULL,
        window TEXT NOT NULL,
        kind TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        last_at TEXT,
        last_result TEXT,
        last_message TEXT,
        last_operation TEXT
    );
    CREATE TABLE replaced_images (
        image_id TEXT NOT NULL,
        ref TEXT NOT NULL,
        instance TEXT NOT NULL,
        replaced_at TEXT NOT NULL,
        pruned_at TEXT,
        PRIMARY KEY (image_id, instance)
    )
    """,
    # system (issue 14): metrics history rollups, one row per series (host, or an instance)
    # and bucket (60 s rows kept 48 h, 3600 s rows kept 90 days; system/history_store.py)
    """
    CREATE TABLE metric_rollups (
        scope TEXT NOT NULL,
        name TEXT NOT NULL,
        resolution INTEGER NOT NULL,
        at INTEGER NOT NULL,
        cpu_min REAL, cpu_max REAL,
        cpu_sum REAL NOT NULL DEFAULT 0, cpu_n INTEGER NOT NULL DEFAULT 0,
        memory_min REAL, memory_max REAL,
        memory_sum REAL NOT NULL DEFAULT 0, memory_n INTEGER NOT NULL DEFAULT 0,
        disk_min REAL, disk_max REAL,
        disk_sum REAL NOT NULL DEFAULT 0, disk_n INTEGER NOT NULL DEFAULT 0,
        rx_min REAL, rx_max REAL,
        rx_sum REAL NOT NULL DEFAULT 0, rx_n INTEGER NOT NULL DEFAULT 0,
        tx_min REAL, tx_max REAL,
        tx_sum REAL NOT NULL DEFAULT 0, tx_n INTEGER NOT NULL DEFAULT 0,
        read_min REAL, read_max REAL,
        read_sum REAL NOT NULL DEFAULT 0, read_n INTEGER NOT NULL DEFAULT 0,
        write_min REAL, write_max REAL,
        write_sum REAL NOT NULL DEFAULT 0, write_n INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (scope, name, resolution, at)
    ) WITHOUT ROWID;
    CREATE INDEX metric_rollups_age ON metric_rollups(resolution, at)
    """,
    # install (issue 15): the StackHub version that last ran on this database, so an older
    # StackHub refuses to start on it (state/versioning.py)
    """
    CREATE TABLE stackhub_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )
    """,
    # gateway (issue 11): the DNS records StackHub wrote at the provider (proxy/publish.py),
    # so a restart still updates or deletes them; written = 0 while a write may be under way
    """
    CREATE TABLE dns_published (
        zone TEXT NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        content TEXT NOT NULL,
        written INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (zone, name, type)
    )
    """,
    # backups (issue 12): the default schedule and retention, for every instance without its
    # own schedule (one row at most; an instance opts out with its own paused schedule)
    """
    CREATE TABLE backup_default_schedule (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        every TEXT NOT NULL,
        at TEXT NOT NULL,
        weekday INTEGER,
        repository TEXT,
        keep_last INTEGER NOT NULL DEFAULT 0,
        keep_daily INTEGER NOT NULL DEFAULT 0,
        keep_weekly INTEGER NOT NULL DEFAULT 0,
        keep_monthly INTEGER NOT NULL DEFAULT 0,
        enabled INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )
    """,
    # backups (issue 12): the system backup's schedule and retention (one row at most; its
    # retention prunes scheduled system snapshots only) and its last runs, good or failed
    """
    CREATE TABLE backup_system_schedule (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        every TEXT NOT NULL,
        at TEXT NOT NULL,
        weekday INTEGER,
        repository TEXT,
        keep_last INTEGER NOT NULL DEFAULT 0,
        keep_daily INTEGER NOT NULL DEFAULT 0,
        keep_weekly INTEGER NOT NULL DEFAULT 0,
        keep_monthly INTEGER NOT NULL DEFAULT 0,
        enabled INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE backup_system_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_success_at TEXT,
        last_snapshot TEXT,
        last_repository TEXT,
        last_failure_at TEXT,
        last_error TEXT,
        last_scheduled_at TEXT
    )
    """,
    # domains: the last error's code and the values it is worded with (DomainRead.error_code,
    # error_detail as JSON), so the console words it in its language; NULL for older errors
    """
    ALTER TABLE domains ADD COLUMN error_code TEXT;
    ALTER TABLE domains ADD COLUMN error_detail TEXT
    """,
]
