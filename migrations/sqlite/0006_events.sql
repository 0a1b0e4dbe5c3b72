-- Accepted contact-center events (SQLite). Keep in step with ../postgres/0006_events.sql.
-- An event is stored before it is acknowledged, once per (tenant, source, id).
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT NOT NULL,
    source      TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    agent       TEXT,
    queue       TEXT,
    body        TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX events_key ON events (tenant_id, source, event_id);
CREATE INDEX events_tenant_at ON events (tenant_id, at);
