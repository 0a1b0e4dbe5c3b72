-- Collection versions (PostgreSQL). Keep in step with ../sqlite/0003_collection_versions.sql.
-- Every change to a tenant's collection bumps its version, whoever makes it (this instance,
-- another instance, the CLI). List responses carry the version in their ETag and are cached
-- against it, so a cached page is never served after the data behind it changed.

CREATE TABLE collection_versions (
    tenant_id  TEXT NOT NULL,
    collection TEXT NOT NULL,
    version    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, collection)
);

CREATE FUNCTION bump_collection_version() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    owner TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN owner := OLD.tenant_id; ELSE owner := NEW.tenant_id; END IF;
    INSERT INTO collection_versions (tenant_id, collection, version) VALUES (owner, TG_TABLE_NAME, 1)
        ON CONFLICT (tenant_id, collection) DO UPDATE SET version = collection_versions.version + 1;
    RETURN NULL;
END;
$$;

CREATE TRIGGER teams_version AFTER INSERT OR UPDATE OR DELETE ON teams
    FOR EACH ROW EXECUTE FUNCTION bump_collection_version();
CREATE TRIGGER locations_version AFTER INSERT OR UPDATE OR DELETE ON locations
    FOR EACH ROW EXECUTE FUNCTION bump_collection_version();
CREATE TRIGGER agents_version AFTER INSERT OR UPDATE OR DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION bump_collection_version();
CREATE TRIGGER queues_version AFTER INSERT OR UPDATE OR DELETE ON queues
    FOR EACH ROW EXECUTE FUNCTION bump_collection_version();
CREATE TRIGGER dids_version AFTER INSERT OR UPDATE OR DELETE ON dids
    FOR EACH ROW EXECUTE FUNCTION bump_collection_version();
CREATE TRIGGER endpoints_version AFTER INSERT OR UPDATE OR DELETE ON endpoints
    FOR EACH ROW EXECUTE FUNCTION bump_collection_version();
