-- Agent reports (keep in step with ../postgres/0020_agent_reports.sql).
--
-- An agent's calls handled: the calls whose handling ended in a range.
CREATE INDEX calls_agent_ended ON calls (tenant_id, agent, ended_at) WHERE talk_s IS NOT NULL;

-- A count per tenant and UTC day (Unix ms / 86,400,000) that goes up whenever something an
-- agent report reads for that day changes: the events writer for agent events, triggers on the
-- call history for handled calls. A kept summary is current while the counts it was made at are.
CREATE TABLE agent_report_versions (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day        INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, day)
);

-- Each agent's figures for one local day in one time zone (see store::agent_reports).
CREATE TABLE agent_report_days (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    tz         TEXT NOT NULL,
    -- The local date, YYYY-MM-DD.
    day        TEXT NOT NULL,
    -- The versions it was made at: "day:version,…".
    versions   TEXT NOT NULL,
    summary    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, tz, day)
);

CREATE TRIGGER calls_agent_report_insert AFTER INSERT ON calls
WHEN NEW.agent IS NOT NULL AND NEW.ended_at IS NOT NULL
BEGIN
    INSERT INTO agent_report_versions (tenant_id, day, version)
    VALUES (NEW.tenant_id, NEW.ended_at / 86400000, 1)
    ON CONFLICT (tenant_id, day) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER calls_agent_report_update
AFTER UPDATE OF agent, ended_at, talk_s, hold_s, wrap_s ON calls
WHEN OLD.agent IS NOT NEW.agent OR OLD.ended_at IS NOT NEW.ended_at OR OLD.talk_s IS NOT NEW.talk_s
    OR OLD.hold_s IS NOT NEW.hold_s OR OLD.wrap_s IS NOT NEW.wrap_s
BEGIN
    INSERT INTO agent_report_versions (tenant_id, day, version)
    SELECT NEW.tenant_id, d, 1
    FROM (SELECT OLD.ended_at / 86400000 AS d UNION SELECT NEW.ended_at / 86400000)
    WHERE d IS NOT NULL
    ON CONFLICT (tenant_id, day) DO UPDATE SET version = version + 1;
END;
