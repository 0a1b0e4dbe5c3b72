-- A reset link a tenant admin made remembers the tenant, so it stops working when the account
-- later joins another tenant or runs the installation (SQLite). Keep in step with
-- ../postgres/0005_reset_tenant.sql.
ALTER TABLE password_resets ADD COLUMN tenant_id TEXT;
