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

-- The events writer raises the day of every agent event it stores, which covers a call's
-- handling (its `call_end` is one); this trigger the days a handled call moved off or changed
-- hands on (late or out-of-order events).
CREATE TRIGGER calls_agent_report_moved AFTER UPDATE OF agent, ended_at ON calls
WHEN NEW.talk_s IS NOT NULL AND (
    (OLD.ended_at IS NOT NULL AND OLD.ended_at / 86400000 IS NOT NEW.ended_at / 86400000)
    OR (OLD.agent IS NOT NULL AND OLD.agent IS NOT NEW.agent))
BEGIN
    INSERT INTO agent_report_versions (tenant_id, day, version)
    SELECT NEW.tenant_id, d, 1
    FROM (SELECT OLD.ended_at / 86400000 AS d UNION SELECT NEW.ended_at / 86400000)
    WHERE d IS NOT NULL
    ON CONFLICT (tenant_id, day) DO UPDATE SET version = version + 1;
END;
