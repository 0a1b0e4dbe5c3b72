-- Alert rules suspended for running over their time budget tick after tick: the version that
-- did (saving the rule makes a new version, which runs again). Keep in step with the other
-- backend's 0016_alert_rule_suspensions.sql.
CREATE TABLE alert_rule_suspensions (
    tenant_id    TEXT NOT NULL,
    rule_id      TEXT NOT NULL,
    version      INTEGER NOT NULL,
    suspended_at INTEGER NOT NULL,
    reason       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, rule_id),
    FOREIGN KEY (tenant_id, rule_id) REFERENCES alert_rules (tenant_id, id) ON DELETE CASCADE
);
