-- Queue reports read their figures from a summary per queue and UTC day (the day's quarter
-- hours), made from the call history when a report first needs it and kept while the day's
-- calls stay as they were. Keep in step with ../sqlite/0018_report_days.sql.
CREATE TABLE report_days (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    queue        TEXT NOT NULL,
    -- Unix ms / 86,400,000.
    day          BIGINT NOT NULL,
    -- The queue settings the summary applied (a change of settings makes it out of date).
    threshold_s  DOUBLE PRECISION NOT NULL,
    short_s      DOUBLE PRECISION NOT NULL,
    -- The day's version (report_versions) the summary was made at.
    version      BIGINT NOT NULL,
    -- The day's cells as JSON (see store::reports).
    summary      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, queue, day)
);

-- A count per queue and UTC day that goes up whenever one of the day's calls changes, kept by
-- triggers on the call history whichever way a call changes (events, imports, the history's
-- backfill): the day a call's outcome or end fell on before the change and the one after. A
-- summary made at a version is current while the version stands. (The update takes the row's
-- lock, so a change committed after a report read the version always shows as a new one.)
CREATE TABLE report_versions (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    queue      TEXT NOT NULL,
    day        BIGINT NOT NULL,
    version    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, queue, day)
);

CREATE FUNCTION calls_bump_report_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_versions (tenant_id, queue, day, version)
    SELECT DISTINCT NEW.tenant_id, NEW.queue, d, 1
    FROM (VALUES (NEW.outcome_at / 86400000), (NEW.ended_at / 86400000),
                 (CASE WHEN TG_OP = 'UPDATE' THEN OLD.outcome_at / 86400000 END),
                 (CASE WHEN TG_OP = 'UPDATE' THEN OLD.ended_at / 86400000 END)) AS days (d)
    WHERE d IS NOT NULL
    ON CONFLICT (tenant_id, queue, day) DO UPDATE SET version = report_versions.version + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER calls_report_insert AFTER INSERT ON calls FOR EACH ROW
WHEN (NEW.queue <> '' AND (NEW.outcome_at IS NOT NULL OR NEW.ended_at IS NOT NULL))
EXECUTE FUNCTION calls_bump_report_days();

CREATE TRIGGER calls_report_update AFTER UPDATE ON calls FOR EACH ROW
WHEN (NEW.queue <> '' AND (OLD.outcome, OLD.outcome_at, OLD.wait_s, OLD.ended_at, OLD.talk_s, OLD.hold_s, OLD.wrap_s)
    IS DISTINCT FROM (NEW.outcome, NEW.outcome_at, NEW.wait_s, NEW.ended_at, NEW.talk_s, NEW.hold_s, NEW.wrap_s))
EXECUTE FUNCTION calls_bump_report_days();
