-- Agent reports (keep in step with ../sqlite/0020_agent_reports.sql).
--
-- An agent's calls handled: the calls whose handling ended in a range.
CREATE INDEX calls_agent_ended ON calls (tenant_id, agent, ended_at) WHERE talk_s IS NOT NULL;

-- A count per tenant and UTC day (Unix ms / 86,400,000) that goes up whenever something an
-- agent report reads for that day changes: the events writer for agent events, triggers on the
-- call history for handled calls. A kept summary is current while the counts it was made at are.
CREATE TABLE agent_report_versions (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    day        BIGINT NOT NULL,
    version    BIGINT NOT NULL,
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

CREATE FUNCTION calls_bump_agent_report_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO agent_report_versions (tenant_id, day, version)
    SELECT DISTINCT NEW.tenant_id, d, 1
    FROM (VALUES (NEW.ended_at / 86400000),
                 (CASE WHEN TG_OP = 'UPDATE' THEN OLD.ended_at / 86400000 END)) AS days (d)
    WHERE d IS NOT NULL
    ON CONFLICT (tenant_id, day) DO UPDATE SET version = agent_report_versions.version + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER calls_agent_report_insert AFTER INSERT ON calls FOR EACH ROW
WHEN (NEW.agent IS NOT NULL AND NEW.ended_at IS NOT NULL)
EXECUTE FUNCTION calls_bump_agent_report_days();

CREATE TRIGGER calls_agent_report_update AFTER UPDATE ON calls FOR EACH ROW
WHEN ((OLD.agent, OLD.ended_at, OLD.talk_s, OLD.hold_s, OLD.wrap_s)
    IS DISTINCT FROM (NEW.agent, NEW.ended_at, NEW.talk_s, NEW.hold_s, NEW.wrap_s))
EXECUTE FUNCTION calls_bump_agent_report_days();
