-- Event batches a plugin kept failing on, to inspect and replay. Keep in step with
-- ../postgres/0011_plugin_dead_letters.sql.
CREATE TABLE plugin_dead_letters (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    installation_id TEXT NOT NULL REFERENCES plugin_installations (id) ON DELETE CASCADE,
    events          TEXT NOT NULL,
    error           TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX plugin_dead_letters_installation ON plugin_dead_letters (installation_id, created_at);
