-- Call history: one row per call in a queue (an attempt: a caller moved on from one queue to
-- another has a row in each) or per call outside queues (queue ''), folded from the accepted
-- events when they are stored and completed by imported CDRs. Times in Unix ms, durations in
-- seconds. Keep in step with ../sqlite/0017_calls.sql.
CREATE TABLE calls (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    call_id      TEXT NOT NULL,
    queue        TEXT NOT NULL,
    agent        TEXT,
    direction    TEXT,
    started_at   BIGINT NOT NULL,
    -- answered, abandoned, timeout, full, join_empty; NULL while the caller waits.
    outcome      TEXT,
    -- When the call was answered or left the queue: where a queue's figures count it.
    outcome_at   BIGINT,
    wait_s       DOUBLE PRECISION,
    answered_at  BIGINT,
    ended_at     BIGINT,
    talk_s       DOUBLE PRECISION,
    hold_s       DOUBLE PRECISION,
    wrap_s       DOUBLE PRECISION,
    caller       TEXT,
    destination  TEXT,
    disposition  TEXT,
    billsec_s    BIGINT,
    PRIMARY KEY (tenant_id, call_id, queue)
);
-- Browsing newest first, and by queue, agent, caller or destination (a prefix is a range of
-- bytes, hence the C collation).
CREATE INDEX calls_started ON calls (tenant_id, started_at, call_id, queue);
CREATE INDEX calls_queue_started ON calls (tenant_id, queue, started_at, call_id);
CREATE INDEX calls_agent_started ON calls (tenant_id, agent, started_at, call_id, queue);
CREATE INDEX calls_caller ON calls (tenant_id, caller COLLATE "C", started_at) WHERE caller IS NOT NULL;
CREATE INDEX calls_destination ON calls (tenant_id, destination COLLATE "C", started_at) WHERE destination IS NOT NULL;
-- Reports count a queue's calls where their outcome fell.
CREATE INDEX calls_queue_outcome ON calls (tenant_id, queue, outcome_at, outcome, wait_s);
CREATE INDEX calls_queue_ended ON calls (tenant_id, queue, ended_at, talk_s, hold_s, wrap_s);

-- A call's detail reads its CDRs by the call's id.
CREATE INDEX call_records_call ON call_records (tenant_id, call_id);

-- A call's timeline reads its events by the call's id, within the call's time (through
-- events_tenant_at: one more index on the events would slow every ingest for one page).
ALTER TABLE events ADD COLUMN call_id TEXT;
UPDATE events SET call_id = body::jsonb ->> 'call'
WHERE kind IN ('caller_join', 'caller_answer', 'caller_leave', 'call_start', 'call_end');

-- Reports by week start on the tenant's day: monday, sunday or saturday.
ALTER TABLE tenants ADD COLUMN week_start TEXT NOT NULL DEFAULT 'monday';
