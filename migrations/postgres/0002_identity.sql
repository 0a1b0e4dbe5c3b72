-- Identity and access (PostgreSQL). Keep in step with ../sqlite/0002_identity.sql.

-- Local passwords (argon2id PHC strings), installation operators, UI language.
ALTER TABLE users ADD COLUMN password_hash TEXT;
ALTER TABLE users ADD COLUMN password_changed_at BIGINT;
ALTER TABLE users ADD COLUMN platform_admin BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN locale TEXT;
ALTER TABLE users ADD COLUMN last_login_at BIGINT;

-- A suspended tenant's tokens, sessions and sign-ins get nothing.
ALTER TABLE tenants ADD COLUMN suspended_at BIGINT;

-- Accounts at an OpenID provider linked to a Monti user.
CREATE TABLE user_identities (
    provider      TEXT NOT NULL,
    subject       TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    last_login_at BIGINT,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX user_identities_user ON user_identities (user_id);

-- Browser sessions. The cookie carries a secret; only its hash is stored.
CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    tenant_id     TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    csrf_token    TEXT NOT NULL,
    auth_method   TEXT NOT NULL,
    oidc_provider TEXT,
    id_token_enc  TEXT,
    ip            TEXT,
    user_agent    TEXT,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id, created_at);

-- One-time password reset links (hash only).
CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX password_resets_user ON password_resets (user_id);

-- Installation-wide state such as the first-run setup token hash.
CREATE TABLE system_state (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- OpenID providers a tenant admin configured in the UI (global ones live in monti.toml).
CREATE TABLE oidc_providers (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    slug              TEXT NOT NULL UNIQUE,
    display_name      TEXT NOT NULL,
    issuer            TEXT NOT NULL,
    client_id         TEXT NOT NULL,
    client_secret_enc TEXT,
    scopes            JSONB NOT NULL DEFAULT '["openid","email","profile"]',
    roles_claim       TEXT NOT NULL DEFAULT 'groups',
    role_map          JSONB NOT NULL DEFAULT '{}',
    default_role      TEXT,
    enabled           BOOLEAN NOT NULL DEFAULT TRUE,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    version           BIGINT NOT NULL DEFAULT 1
);

-- Append-only record of sign-ins, changes and secret access. tenant_id is NULL for
-- installation-level events; there is deliberately no foreign key, so history outlives rows.
CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    target_kind TEXT,
    target_id   TEXT,
    detail      TEXT,
    before_json TEXT,
    after_json  TEXT,
    ip          TEXT,
    user_agent  TEXT,
    request_id  TEXT
);
CREATE INDEX audit_log_tenant_at ON audit_log (tenant_id, at, id);
CREATE INDEX audit_log_action ON audit_log (tenant_id, action, at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
