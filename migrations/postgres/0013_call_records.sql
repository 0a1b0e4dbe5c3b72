-- Call detail records imported from a PBX (Asterisk's Master.csv), one row per CDR line. The
-- key is a digest of the line, so importing a file again adds nothing. Keep in step with the
-- other backend's 0013_call_records.sql.
CREATE TABLE call_records (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    record_key   TEXT NOT NULL,
    source       TEXT NOT NULL,
    call_id      TEXT NOT NULL,
    caller       TEXT NOT NULL,
    destination  TEXT NOT NULL,
    context      TEXT NOT NULL,
    channel      TEXT NOT NULL,
    dst_channel  TEXT NOT NULL,
    last_app     TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    answered_at  BIGINT,
    ended_at     BIGINT NOT NULL,
    duration_s   BIGINT NOT NULL,
    billsec_s    BIGINT NOT NULL,
    disposition  TEXT NOT NULL,
    account      TEXT NOT NULL,
    imported_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, record_key)
);
CREATE INDEX call_records_started ON call_records (tenant_id, started_at);
