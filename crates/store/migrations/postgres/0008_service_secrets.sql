-- Secrets the bridge makes for itself and every replica must share, such as the key that seals
-- RFC 9865 pagination cursors. Made once, on first use, by whichever replica gets there first.
CREATE TABLE service_secrets (
    name    TEXT PRIMARY KEY,
    secret  BYTEA NOT NULL,
    created TIMESTAMPTZ NOT NULL
);
