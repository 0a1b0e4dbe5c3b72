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

-- A count per queue and UTC day that goes up whenever one of the day's calls changes. The
-- events writer raises the days a batch's calls were counted or ended on, in the batch's
-- transaction (store::calls); the trigger below the day a call moved off, when its outcome or
-- end comes to lie on another day (late or out-of-order events). A summary made at a version
-- is current while the version stands. (Raising takes the row's lock, so a change committed
-- after a report read the version always shows as a newer one.)
CREATE TABLE report_versions (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    queue      TEXT NOT NULL,
    day        BIGINT NOT NULL,
    version    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, queue, day)
);

CREATE FUNCTION calls_report_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_versions (tenant_id, queue, day, version)
    SELECT DISTINCT NEW.tenant_id, NEW.queue, d, 1
    FROM (VALUES (OLD.outcome_at / 86400000), (OLD.ended_at / 86400000)) AS days (d)
    WHERE d IS NOT NULL
    ON CONFLICT (tenant_id, queue, day) DO UPDATE SET version = report_versions.version + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER calls_report_moved AFTER UPDATE ON calls FOR EACH ROW
WHEN (NEW.queue <> '' AND (
    (OLD.outcome_at IS NOT NULL AND OLD.outcome_at / 86400000 IS DISTINCT FROM NEW.outcome_at / 86400000)
    OR (OLD.ended_at IS NOT NULL AND OLD.ended_at / 86400000 IS DISTINCT FROM NEW.ended_at / 86400000)))
EXECUTE FUNCTION calls_report_moved();
