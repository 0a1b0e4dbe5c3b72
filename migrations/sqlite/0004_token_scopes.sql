-- API tokens can be limited to teams and locations, like scoped supervisors (SQLite).
-- Keep in step with ../postgres/0004_token_scopes.sql.
ALTER TABLE api_tokens ADD COLUMN team_scope TEXT NOT NULL DEFAULT '[]';
ALTER TABLE api_tokens ADD COLUMN location_scope TEXT NOT NULL DEFAULT '[]';
