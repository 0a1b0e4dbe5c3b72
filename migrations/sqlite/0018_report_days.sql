-- Queue reports read their figures from a summary per queue and UTC day (the day's quarter
-- hours), made from the call history when a report first needs it and kept while the day's
-- calls stay as they were. Keep in step with ../postgres/0018_report_days.sql.
CREATE TABLE report_days (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    queue        TEXT NOT NULL,
    -- Unix ms / 86,400,000.
    day          INTEGER NOT NULL,
    -- The queue settings the summary applied (a change of settings makes it out of date).
    threshold_s  REAL NOT NULL,
    short_s      REAL NOT NULL,
    -- The day's version (report_versions) the summary was made at.
    version      INTEGER NOT NULL,
    -- The day's cells as JSON (see store::reports).
    summary      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, queue, day)
);

-- A count per queue and UTC day that goes up whenever one of the day's calls changes, kept by
-- triggers on the call history whichever way a call changes (events, imports, the history's
-- backfill): the day a call's outcome or end fell on before the change and the one after. A
-- summary made at a version is current while the version stands.
CREATE TABLE report_versions (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    queue      TEXT NOT NULL,
    day        INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, queue, day)
) WITHOUT ROWID;

CREATE TRIGGER calls_report_insert AFTER INSERT ON calls
WHEN NEW.queue <> '' AND (NEW.outcome_at IS NOT NULL OR NEW.ended_at IS NOT NULL)
BEGIN
    INSERT INTO report_versions (tenant_id, queue, day, version)
    SELECT NEW.tenant_id, NEW.queue, d, 1
    FROM (SELECT NEW.outcome_at / 86400000 AS d UNION SELECT NEW.ended_at / 86400000)
    WHERE d IS NOT NULL
    ON CONFLICT (tenant_id, queue, day) DO UPDATE SET version = version + 1;
END;

CREATE TRIGGER calls_report_update
AFTER UPDATE OF outcome, outcome_at, wait_s, ended_at, talk_s, hold_s, wrap_s ON calls
WHEN NEW.queue <> '' AND (OLD.outcome IS NOT NEW.outcome OR OLD.outcome_at IS NOT NEW.outcome_at
    OR OLD.wait_s IS NOT NEW.wait_s OR OLD.ended_at IS NOT NEW.ended_at OR OLD.talk_s IS NOT NEW.talk_s
    OR OLD.hold_s IS NOT NEW.hold_s OR OLD.wrap_s IS NOT NEW.wrap_s)
BEGIN
    INSERT INTO report_versions (tenant_id, queue, day, version)
    SELECT NEW.tenant_id, NEW.queue, d, 1
    FROM (SELECT OLD.outcome_at / 86400000 AS d UNION SELECT OLD.ended_at / 86400000
        UNION SELECT NEW.outcome_at / 86400000 UNION SELECT NEW.ended_at / 86400000)
    WHERE d IS NOT NULL
    ON CONFLICT (tenant_id, queue, day) DO UPDATE SET version = version + 1;
END;
