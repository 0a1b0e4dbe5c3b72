-- What a tenant admin approved of an installation's capabilities (the manifest's
-- `capabilities` as JSON); NULL: nothing yet. A package asking for more runs only once approved.
-- Keep in step with the other backend's 0012_plugin_approvals.sql.
ALTER TABLE plugin_installations ADD COLUMN approved TEXT;
