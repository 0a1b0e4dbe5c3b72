-- Plugin packages and per-tenant installations (SQLite). Keep in step with ../postgres/0009_plugins.sql.
-- A package is stored once per digest; installations point at the version they run.
CREATE TABLE plugin_packages (
    digest      TEXT PRIMARY KEY,
    plugin_id   TEXT NOT NULL,
    version     TEXT NOT NULL,
    world       TEXT NOT NULL,
    manifest    TEXT NOT NULL,
    component   BLOB NOT NULL,
    size        INTEGER NOT NULL,
    uploaded_at INTEGER NOT NULL
);
CREATE TABLE plugin_installations (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    plugin_id    TEXT NOT NULL,
    digest       TEXT NOT NULL REFERENCES plugin_packages (digest),
    config       TEXT NOT NULL DEFAULT '{}',
    enabled      BOOLEAN NOT NULL DEFAULT FALSE,
    kv           TEXT NOT NULL DEFAULT '{}',
    invocations  INTEGER NOT NULL DEFAULT 0,
    failures     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    last_logs    TEXT NOT NULL DEFAULT '[]',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (tenant_id, plugin_id)
);
