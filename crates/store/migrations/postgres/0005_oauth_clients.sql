-- OAuth 2.0 clients (client credentials grant, RFC 6749 §4.4). Only the SHA-256 of the secret
-- is stored; the secret is shown once, when the client is made. The access tokens issued to a
-- client are signed JWTs and are never stored.
CREATE TABLE oauth_clients (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL,
    client_id     TEXT NOT NULL UNIQUE,
    secret_sha256 TEXT NOT NULL UNIQUE,
    scopes        TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ
);
CREATE UNIQUE INDEX oauth_clients_active_name ON oauth_clients (name) WHERE revoked_at IS NULL;
