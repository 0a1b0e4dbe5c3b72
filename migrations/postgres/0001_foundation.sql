-- Monti foundation schema (PostgreSQL). Keep in step with ../sqlite/0001_foundation.sql.
-- Times are Unix milliseconds (UTC). JSON columns are JSONB.
-- Tenant-owned tables carry tenant_id, and references between them are composite
-- (tenant_id, id) foreign keys, so a row can never point at another tenant's row.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    features    JSONB NOT NULL DEFAULT '{}',
    limits      JSONB NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE users (
    id           TEXT PRIMARY KEY,
    email        TEXT NOT NULL,
    display_name TEXT NOT NULL,
    disabled     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    version      BIGINT NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX users_email ON users (lower(email));

CREATE TABLE memberships (
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role           TEXT NOT NULL CHECK (role IN ('tenant_admin', 'supervisor', 'agent', 'viewer')),
    team_scope     JSONB NOT NULL DEFAULT '[]',
    location_scope JSONB NOT NULL DEFAULT '[]',
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    version        BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, user_id)
);

CREATE TABLE teams (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1,
    UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX teams_name ON teams (tenant_id, lower(name));

CREATE TABLE locations (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    timezone    TEXT,
    address     TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1,
    UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX locations_name ON locations (tenant_id, lower(name));

CREATE TABLE agents (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    team_id     TEXT,
    location_id TEXT,
    user_id     TEXT,
    extension   TEXT,
    interface   TEXT,
    skills      JSONB NOT NULL DEFAULT '[]',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, team_id) REFERENCES teams (tenant_id, id),
    FOREIGN KEY (tenant_id, location_id) REFERENCES locations (tenant_id, id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES memberships (tenant_id, user_id)
);
CREATE UNIQUE INDEX agents_extension ON agents (tenant_id, extension);
CREATE UNIQUE INDEX agents_interface ON agents (tenant_id, interface);
CREATE INDEX agents_team ON agents (tenant_id, team_id);
CREATE INDEX agents_location ON agents (tenant_id, location_id);
CREATE INDEX agents_name ON agents (tenant_id, name, id);

CREATE TABLE queues (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    strategy       TEXT NOT NULL DEFAULT 'rrmemory',
    sl_threshold_s BIGINT NOT NULL DEFAULT 20,
    sl_target_pct  BIGINT NOT NULL DEFAULT 80,
    wrap_up_s      BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    version        BIGINT NOT NULL DEFAULT 1,
    UNIQUE (tenant_id, id)
);
CREATE UNIQUE INDEX queues_name ON queues (tenant_id, lower(name));

CREATE TABLE queue_members (
    tenant_id  TEXT NOT NULL,
    queue_id   TEXT NOT NULL,
    agent_id   TEXT NOT NULL,
    penalty    BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, queue_id, agent_id),
    FOREIGN KEY (tenant_id, queue_id) REFERENCES queues (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX queue_members_agent ON queue_members (tenant_id, agent_id);

CREATE TABLE endpoints (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    auth_username TEXT NOT NULL,
    password_enc  TEXT,
    transport     TEXT NOT NULL,
    codecs        JSONB NOT NULL DEFAULT '[]',
    context       TEXT NOT NULL,
    max_contacts  BIGINT NOT NULL DEFAULT 1,
    agent_id      TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    version       BIGINT NOT NULL DEFAULT 1,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, agent_id) REFERENCES agents (tenant_id, id)
);
CREATE UNIQUE INDEX endpoints_name ON endpoints (tenant_id, name);

CREATE TABLE dids (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    number             TEXT NOT NULL UNIQUE,
    description        TEXT NOT NULL DEFAULT '',
    route_type         TEXT NOT NULL CHECK (route_type IN ('none', 'queue', 'agent', 'endpoint', 'external')),
    route_queue_id     TEXT,
    route_agent_id     TEXT,
    route_endpoint_id  TEXT,
    route_number       TEXT,
    sms_enabled        BOOLEAN NOT NULL DEFAULT FALSE,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    version            BIGINT NOT NULL DEFAULT 1,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, route_queue_id) REFERENCES queues (tenant_id, id),
    FOREIGN KEY (tenant_id, route_agent_id) REFERENCES agents (tenant_id, id),
    FOREIGN KEY (tenant_id, route_endpoint_id) REFERENCES endpoints (tenant_id, id)
);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('platform_admin', 'tenant_admin', 'supervisor', 'agent', 'viewer')),
    token_hash   TEXT NOT NULL UNIQUE,
    token_prefix TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT,
    CHECK ((role = 'platform_admin') = (tenant_id IS NULL))
);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id, created_at);
