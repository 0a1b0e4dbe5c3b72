-- Reading an agent's day (the board's agent drawer) (PostgreSQL).
-- Keep in step with ../sqlite/0007_event_history.sql.
CREATE INDEX events_tenant_agent_at ON events (tenant_id, agent, at);
