-- Alert rules (rhai conditions on the live floor), their versions, silences and the alerts
-- they raised. Keep in step with the other backend's 0014_alert_rules.sql.
CREATE TABLE alert_rules (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    scope       TEXT NOT NULL CHECK (scope IN ('tenant', 'queue', 'agent')),
    expression  TEXT NOT NULL,
    -- JSON arrays of ids: only these queues / teams (empty: all).
    queues      TEXT NOT NULL DEFAULT '[]',
    teams       TEXT NOT NULL DEFAULT '[]',
    severity    TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    for_s       INTEGER NOT NULL,
    -- JSON object of label → value.
    labels      TEXT NOT NULL DEFAULT '{}',
    message     TEXT NOT NULL,
    -- JSON array of notification targets.
    targets     TEXT NOT NULL DEFAULT '[]',
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    version     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT NOT NULL,
    -- The key webhooks of this rule are signed with (HMAC-SHA256), sealed with the server's key.
    signing_secret_enc TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

-- Every version of every rule as it was saved (the rule as JSON).
CREATE TABLE alert_rule_versions (
    tenant_id   TEXT NOT NULL,
    rule_id     TEXT NOT NULL,
    version     INTEGER NOT NULL,
    body        TEXT NOT NULL,
    changed_by  TEXT NOT NULL,
    changed_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, rule_id, version),
    FOREIGN KEY (tenant_id, rule_id) REFERENCES alert_rules (tenant_id, id) ON DELETE CASCADE
);

-- Alerts that fired, and when they resolved.
CREATE TABLE alerts (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id               TEXT NOT NULL,
    rule_id          TEXT NOT NULL,
    rule_version     INTEGER NOT NULL,
    rule_name        TEXT NOT NULL,
    severity         TEXT NOT NULL,
    -- `tenant`, `queue:<id>` or `agent:<id>`.
    subject          TEXT NOT NULL,
    subject_name     TEXT NOT NULL,
    message          TEXT NOT NULL,
    since_at         INTEGER NOT NULL,
    fired_at         INTEGER NOT NULL,
    resolved_at      INTEGER,
    acknowledged_by  TEXT,
    acknowledged_at  INTEGER,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX alerts_open ON alerts (tenant_id, resolved_at);
CREATE INDEX alerts_fired ON alerts (tenant_id, fired_at);
-- One open alert per rule and subject.
CREATE UNIQUE INDEX alerts_one_open ON alerts (tenant_id, rule_id, subject) WHERE resolved_at IS NULL;

-- Silences: a rule's notifications (for one subject, or all) held back until a time.
CREATE TABLE alert_silences (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    rule_id     TEXT NOT NULL,
    subject     TEXT,
    until_at    INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX alert_silences_rule ON alert_silences (tenant_id, rule_id, until_at);

-- Notifications to send (email, webhooks), an outbox: each is tried until it is sent, with
-- growing pauses, and kept as failed after the last attempt.
CREATE TABLE alert_notifications (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id               TEXT NOT NULL,
    rule_id          TEXT NOT NULL,
    -- The target as the rule names it (JSON).
    target           TEXT NOT NULL,
    summary          TEXT NOT NULL,
    -- The webhook's JSON body, or the email's text.
    body             TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    sent_at          INTEGER,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX alert_notifications_due ON alert_notifications (state, next_attempt_at);
CREATE INDEX alert_notifications_rule ON alert_notifications (tenant_id, rule_id, created_at);
