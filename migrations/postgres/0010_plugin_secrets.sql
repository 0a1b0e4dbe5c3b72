-- Secrets of plugin installations, sealed with the installation's key context; the plugin only
-- ever gets a handle. Keep in step with ../sqlite/0010_plugin_secrets.sql.
CREATE TABLE plugin_secrets (
    installation_id TEXT NOT NULL REFERENCES plugin_installations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    sealed          TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (installation_id, name)
);
