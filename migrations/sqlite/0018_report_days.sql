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

-- A count per queue and UTC day that goes up whenever one of the day's calls changes. The
-- events writer raises the days a batch's calls were counted or ended on, in the batch's
-- transaction (store::calls); the trigger below the day a call moved off, when its outcome or
-- end comes to lie on another day (late or out-of-order events). A summary made at a version
-- is current while the version stands.
CREATE TABLE report_versions (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    queue      TEXT NOT NULL,
    day        INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, queue, day)
) WITHOUT ROWID;

CREATE TRIGGER calls_report_moved AFTER UPDATE OF outcome_at, ended_at ON calls
WHEN NEW.queue <> '' AND (
    (OLD.outcome_at IS NOT NULL AND OLD.outcome_at / 86400000 IS NOT NEW.outcome_at / 86400000)
    OR (OLD.ended_at IS NOT NULL AND OLD.ended_at / 86400000 IS NOT NEW.ended_at / 86400000))
BEGIN
    INSERT INTO report_versions (tenant_id, queue, day, version)
    SELECT NEW.tenant_id, NEW.queue, d, 1
    FROM (SELECT OLD.outcome_at / 86400000 AS d UNION SELECT OLD.ended_at / 86400000)
    WHERE d IS NOT NULL
    ON CONFLICT (tenant_id, queue, day) DO UPDATE SET version = version + 1;
END;
