-- Invitations to join a tenant (PostgreSQL). Adding someone by email no longer creates a membership:
-- the person accepts first, so a tenant cannot make another tenant's people its members, and the
-- admin learns nothing about whether the address already has an account. Only the token's hash
-- is kept. Keep in step with ../sqlite/0015_invitations.sql.
CREATE TABLE invitations (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email          TEXT NOT NULL,
    display_name   TEXT,
    role           TEXT NOT NULL CHECK (role IN ('tenant_admin', 'supervisor', 'agent', 'viewer')),
    team_scope     JSONB NOT NULL DEFAULT '[]',
    location_scope JSONB NOT NULL DEFAULT '[]',
    token_hash     TEXT NOT NULL UNIQUE,
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    accepted_at    BIGINT,
    accepted_by    TEXT,
    declined_at    BIGINT,
    revoked_at     BIGINT
);
CREATE INDEX invitations_tenant ON invitations (tenant_id, created_at);
CREATE INDEX invitations_email ON invitations (tenant_id, email);
