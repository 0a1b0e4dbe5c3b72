-- Saved and scheduled reports, and the outbox their emails (and later other mail) go through.
-- Keep in step with ../sqlite/0021_saved_reports.sql.

-- A report's filters kept under a name: the kind of report, its parameters without a range,
-- and the range as a period relative to when it is opened or sent ('yesterday', 'last_week' …;
-- 'custom' keeps range_from and range_to as given). A schedule sends it to recipients daily or
-- weekly at a local time; it runs with what its owner may see when it runs.
CREATE TABLE saved_reports (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id            TEXT NOT NULL,
    name          TEXT NOT NULL,
    -- 'queues' or 'agents'.
    kind          TEXT NOT NULL,
    -- JSON object of the report's parameters (tz, bucket, queue, team, agent).
    params        TEXT NOT NULL,
    period        TEXT NOT NULL,
    range_from    TEXT,
    range_to      TEXT,
    -- Who saved it ('user:<id>' or 'token:<id>'); a schedule runs as them.
    owner         TEXT NOT NULL,
    -- NULL (not scheduled), 'daily' or 'weekly'.
    frequency     TEXT,
    -- Weekly: monday … sunday.
    weekday       TEXT,
    -- Local time 'HH:MM' in the report's time zone.
    send_at       TEXT,
    -- JSON array of email addresses.
    recipients    JSONB NOT NULL DEFAULT '[]',
    -- When the schedule next sends (Unix ms); NULL when not scheduled.
    next_run_at   BIGINT,
    last_run_at   BIGINT,
    -- Why the last run sent nothing (NULL when it went to the outbox).
    last_error    TEXT,
    version       BIGINT NOT NULL DEFAULT 1,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);
CREATE INDEX saved_reports_due ON saved_reports (next_run_at) WHERE next_run_at IS NOT NULL;

-- Email waiting to be sent, sent, or given up on after its retries: one message per recipient,
-- with at most one attachment.
CREATE TABLE mail_outbox (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id               TEXT NOT NULL,
    -- What queued it, e.g. 'saved_report:<id>'.
    origin           TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    subject          TEXT NOT NULL,
    body             TEXT NOT NULL,
    attachment_name  TEXT,
    attachment_type  TEXT,
    attachment       BYTEA,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    sent_at          BIGINT,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX mail_outbox_due ON mail_outbox (state, next_attempt_at);
CREATE INDEX mail_outbox_origin ON mail_outbox (tenant_id, origin, created_at);
