-- API tokens can be limited to teams and locations, like scoped supervisors (PostgreSQL).
-- Keep in step with ../sqlite/0004_token_scopes.sql.
ALTER TABLE api_tokens ADD COLUMN team_scope JSONB NOT NULL DEFAULT '[]';
ALTER TABLE api_tokens ADD COLUMN location_scope JSONB NOT NULL DEFAULT '[]';
