-- Collection versions (SQLite). Keep in step with ../postgres/0003_collection_versions.sql.
-- Every change to a tenant's collection bumps its version, whoever makes it (this instance,
-- another instance, the CLI). List responses carry the version in their ETag and are cached
-- against it, so a cached page is never served after the data behind it changed.

CREATE TABLE collection_versions (
    tenant_id  TEXT NOT NULL,
    collection TEXT NOT NULL,
    version    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, collection)
);

CREATE TRIGGER teams_version_insert AFTER INSERT ON teams
BEGIN
    INSERT INTO collection_versions (tenant_id, collection, version) VALUES (NEW.tenant_id, 'teams', 1)
        ON CONFLICT (tenant_id, collection) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER teams_version_update AFTER UPDATE ON teams
BEGIN
    INSERT INTO collection_versions (tenant_id, collection, version) VALUES (NEW.tenant_id, 'teams', 1)
        ON CONFLICT (tenant_id, collection) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER teams_version_delete AFTER DELETE ON teams
BEGIN
    INSERT INTO collection_versions (tenant_id, collection, version) VALUES (OLD.tenant_id, 'teams', 1)
        ON CONFLICT (tenant_id, collection) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER locations_version_insert AFTER INSERT ON locations
BEGIN
    INSERT INTO collection_versions (tenant_id, collection, version) VALUES (NEW.tenant_id, 'locations', 1)
        ON CONFLICT (tenant_id, collection) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER locations_version_update AFTER UPDATE ON locations
BEGIN
    INSERT INTO collection_versions (tenant_id, collection, version) VALUES (NEW.tenant_id, 'locations', 1)
        ON CONFLICT (tenant_id, collection) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER locations_version_delete AFTER DELETE ON locations
BEGIN
    INSERT INTO collection_versions (tenant_id, collection, version) VALUES (OLD.tenant_id, 'locations', 1)
        ON CONFLICT (tenant_id, collection) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER agents_version_insert AFTER INSERT ON agents
BEGIN
    INSERT INTO collection_versions (tenant_id, collection, version) VALUES (NEW.tenant_id, 'agents', 1)
        ON CONFLICT (tenant_id, collection) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER agents_version_update AFTER UPDATE ON agents
BEGIN
    INSERT INTO collection_versions (tenant_id, collection, version) VALUES (NEW.tenant_id, 'agents', 1)
        ON CONFLICT (tenant_id, collection) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER agents_version_delete AFTER DELETE ON agents
BEGIN
    INSERT INTO collection_versions (tenant_id, collection, version) VALUES (OLD.tenant_id, 'agents', 1)
        ON CONFLICT (tenant_id, collection) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER queues_version_insert AFTER INSERT ON queues
BEGIN
    INSERT INTO collection_versions (tenant_id, collection, version) VALUES (NEW.tenant_id, 'queues', 1)
        ON CONFLICT (tenant_id, collection) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER queues_version_update AFTER UPDATE ON queues
BEGIN
    INSERT INTO collection_versions (tenant_id, collection, version) VALUES (NEW.tenant_id, 'queues', 1)
        ON CONFLICT (tenant_id, collection) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER queues_version_delete AFTER DELETE ON queues
BEGIN
    INSERT INTO collection_versions (tenant_id, collection, version) VALUES (OLD.tenant_id, 'queues', 1)
        ON CONFLICT (tenant_id, collection) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER dids_version_insert AFTER INSERT ON dids
BEGIN
    INSERT INTO collection_versions (tenant_id, collection, version) VALUES (NEW.tenant_id, 'dids', 1)
        ON CONFLICT (tenant_id, collection) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER dids_version_update AFTER UPDATE ON dids
BEGIN
    INSERT INTO collection_versions (tenant_id, collection, version) VALUES (NEW.tenant_id, 'dids', 1)
        ON CONFLICT (tenant_id, collection) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER dids_version_delete AFTER DELETE ON dids
BEGIN
    INSERT INTO collection_versions (tenant_id, collection, version) VALUES (OLD.tenant_id, 'dids', 1)
        ON CONFLICT (tenant_id, collection) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER endpoints_version_insert AFTER INSERT ON endpoints
BEGIN
    INSERT INTO collection_versions (tenant_id, collection, version) VALUES (NEW.tenant_id, 'endpoints', 1)
        ON CONFLICT (tenant_id, collection) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER endpoints_version_update AFTER UPDATE ON endpoints
BEGIN
    INSERT INTO collection_versions (tenant_id, collection, version) VALUES (NEW.tenant_id, 'endpoints', 1)
        ON CONFLICT (tenant_id, collection) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER endpoints_version_delete AFTER DELETE ON endpoints
BEGIN
    INSERT INTO collection_versions (tenant_id, collection, version) VALUES (OLD.tenant_id, 'endpoints', 1)
        ON CONFLICT (tenant_id, collection) DO UPDATE SET version = version + 1;
END;
