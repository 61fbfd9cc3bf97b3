-- The id of the key an audit record's hash is keyed with (HMAC-SHA-256); NULL for a plain
-- SHA-256 hash. The key itself is never stored.
ALTER TABLE audit_log ADD COLUMN key_id TEXT;
