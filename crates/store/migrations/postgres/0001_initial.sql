-- scim-bridge schema, PostgreSQL flavour. migrations/sqlite/ holds the same files for SQLite.
-- JSON is TEXT so key order survives (serde_json preserve_order); nothing queries inside it.

-- SCIM Users and Groups. Indexed columns are copies of attributes held in `attrs`;
-- *_key columns are the lower-cased values that uniqueness and `eq` filters compare.
CREATE TABLE resources (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('User', 'Group')),
    user_name        TEXT,
    user_name_key    TEXT,
    external_id      TEXT,
    display_name     TEXT,
    display_name_key TEXT,
    active           BOOLEAN,
    attrs            TEXT NOT NULL,
    version          BIGINT NOT NULL,
    created          TIMESTAMPTZ NOT NULL,
    last_modified    TIMESTAMPTZ NOT NULL
);
-- RFC 7643 §4.1: userName is unique ignoring case; Entra requires unique group displayNames.
CREATE UNIQUE INDEX resources_user_name ON resources (user_name_key) WHERE kind = 'User';
CREATE UNIQUE INDEX resources_group_display_name ON resources (display_name_key) WHERE kind = 'Group';
CREATE INDEX resources_external_id ON resources (kind, external_id);
CREATE INDEX resources_display_name ON resources (kind, display_name_key);
CREATE INDEX resources_last_modified ON resources (kind, last_modified);
-- The stable listing order used for paging.
CREATE INDEX resources_listing ON resources (kind, created, id);

-- Group membership as rows: adding one member costs the same in a 5- or a 50,000-member group.
CREATE TABLE group_members (
    group_id    TEXT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    member_id   TEXT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    member_type TEXT NOT NULL CHECK (member_type IN ('User', 'Group')),
    display     TEXT,
    added_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX group_members_by_member ON group_members (member_id, group_id);

-- The worker's queue: which resource to reconcile, one row per resource.
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    kind            TEXT NOT NULL,
    resource_id     TEXT NOT NULL,
    priority        INTEGER NOT NULL,
    generation      BIGINT NOT NULL,
    enqueued_at     TIMESTAMPTZ NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    leased_by       TEXT,
    lease_until     TIMESTAMPTZ,
    dead_at         TIMESTAMPTZ,
    dead_reason     TEXT,
    UNIQUE (kind, resource_id)
);
CREATE INDEX outbox_due ON outbox (priority DESC, enqueued_at, id) WHERE dead_at IS NULL;

-- Append-only audit log, hash-chained; audit_head holds the chain's tip and is locked by every
-- append, which keeps the chain linear across replicas.
CREATE TABLE audit_log (
    seq           BIGINT PRIMARY KEY,
    time          TIMESTAMPTZ NOT NULL,
    request_id    TEXT NOT NULL,
    actor         TEXT,
    source_addr   TEXT,
    operation     TEXT NOT NULL,
    resource_type TEXT,
    resource_id   TEXT,
    change        TEXT NOT NULL,
    result        TEXT NOT NULL,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (time);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Bearer tokens the IdPs present, stored as SHA-256 digests only.
CREATE TABLE api_tokens (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- What the worker knows about the Coder side of each SCIM resource.
CREATE TABLE coder_users (
    scim_id            TEXT PRIMARY KEY,
    coder_user_id      TEXT NOT NULL,
    coder_username     TEXT NOT NULL,
    coder_username_key TEXT NOT NULL UNIQUE,
    login_type         TEXT NOT NULL,
    adopted            BOOLEAN NOT NULL,
    last_applied       TEXT NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);

CREATE TABLE coder_groups (
    scim_id         TEXT PRIMARY KEY,
    coder_group_id  TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    coder_name      TEXT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE sync_issues (
    id          BIGSERIAL PRIMARY KEY,
    kind        TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    issue_type  TEXT NOT NULL,
    detail      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    resolved_at TIMESTAMPTZ
);
CREATE UNIQUE INDEX sync_issues_open ON sync_issues (kind, resource_id, issue_type) WHERE resolved_at IS NULL;
