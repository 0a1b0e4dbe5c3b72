-- Where a tenant's call recordings are: a directory the operator allows (kind 'directory',
-- location its path) or an S3-compatible bucket (kind 's3', location the bucket), and the
-- pattern that names a call's file. Keep in step with ../postgres/0019_recording_sources.sql.
CREATE TABLE recording_sources (
    tenant_id      TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL,
    location       TEXT NOT NULL,
    pattern        TEXT NOT NULL,
    -- S3 only: the service's URL (empty for AWS), region, key id, the sealed secret key and a
    -- prefix inside the bucket.
    endpoint       TEXT NOT NULL DEFAULT '',
    region         TEXT NOT NULL DEFAULT '',
    access_key_id  TEXT NOT NULL DEFAULT '',
    secret_enc     TEXT,
    prefix         TEXT NOT NULL DEFAULT '',
    updated_at     INTEGER NOT NULL,
    updated_by     TEXT NOT NULL
);
