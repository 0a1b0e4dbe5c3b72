-- Plugin packages and per-tenant installations (PostgreSQL). Keep in step with ../sqlite/0009_plugins.sql.
-- A package is stored once per digest; installations point at the version they run.
CREATE TABLE plugin_packages (
    digest      TEXT PRIMARY KEY,
    plugin_id   TEXT NOT NULL,
    version     TEXT NOT NULL,
    world       TEXT NOT NULL,
    manifest    TEXT NOT NULL,
    component   BYTEA NOT NULL,
    size        BIGINT NOT NULL,
    uploaded_at BIGINT NOT NULL
);
CREATE TABLE plugin_installations (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    plugin_id    TEXT NOT NULL,
    digest       TEXT NOT NULL REFERENCES plugin_packages (digest),
    config       TEXT NOT NULL DEFAULT '{}',
    enabled      BOOLEAN NOT NULL DEFAULT FALSE,
    kv           TEXT NOT NULL DEFAULT '{}',
    invocations  BIGINT NOT NULL DEFAULT 0,
    failures     BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    last_logs    TEXT NOT NULL DEFAULT '[]',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (tenant_id, plugin_id)
);
