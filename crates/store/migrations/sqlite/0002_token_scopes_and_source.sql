-- What each bearer token may do, and how it came to exist.
-- scopes: space-separated scope names (`scim:read scim:write`); tokens made before scopes
--         existed keep the full access they had.
-- source: `cli` for `scim-bridge token create`, `file` for SCIM_BRIDGE_IDP_TOKENS_FILE; only
--         `file` tokens are revoked when their name leaves the file.
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT 'scim:read scim:write';
ALTER TABLE api_tokens ADD COLUMN source TEXT NOT NULL DEFAULT 'cli' CHECK (source IN ('cli', 'file'));
