-- Agents (draft-wzdk-scim-agent-resource) and AgenticApplications become resource kinds, and an
-- Agent can be a Group member. SQLite cannot alter a CHECK constraint, so both tables are
-- rebuilt (SQLite's "making other kinds of table schema changes" procedure): the new tables are
-- filled, the old ones dropped, and the renames carry group_members' references over to the new
-- resources table. group_members goes first: dropping resources while it still pointed there
-- would cascade-delete every membership.
CREATE TABLE resources_new (
    id               TEXT PRIMARY KEY NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('User', 'Group', 'Agent', 'AgenticApplication')),
    user_name        TEXT,
    user_name_key    TEXT,
    external_id      TEXT,
    display_name     TEXT,
    display_name_key TEXT,
    active           BOOLEAN,
    attrs            TEXT NOT NULL,
    version          INTEGER NOT NULL,
    created          TEXT NOT NULL,
    last_modified    TEXT NOT NULL
);
INSERT INTO resources_new SELECT id, kind, user_name, user_name_key, external_id, display_name,
    display_name_key, active, attrs, version, created, last_modified FROM resources;

CREATE TABLE group_members_new (
    group_id    TEXT NOT NULL REFERENCES resources_new (id) ON DELETE CASCADE,
    member_id   TEXT NOT NULL REFERENCES resources_new (id) ON DELETE CASCADE,
    member_type TEXT NOT NULL CHECK (member_type IN ('User', 'Group', 'Agent')),
    display     TEXT,
    added_at    TEXT NOT NULL,
    PRIMARY KEY (group_id, member_id)
) WITHOUT ROWID;
INSERT INTO group_members_new SELECT group_id, member_id, member_type, display, added_at
    FROM group_members;

DROP TABLE group_members;
DROP TABLE resources;
ALTER TABLE resources_new RENAME TO resources;
ALTER TABLE group_members_new RENAME TO group_members;

CREATE UNIQUE INDEX resources_user_name ON resources (user_name_key) WHERE kind = 'User';
CREATE UNIQUE INDEX resources_group_display_name ON resources (display_name_key) WHERE kind = 'Group';
-- The agent user name (agentUserName, else name) becomes a Coder username: unique ignoring case
-- among agents; an application's name likewise among applications.
CREATE UNIQUE INDEX resources_agent_user_name ON resources (user_name_key) WHERE kind = 'Agent';
CREATE UNIQUE INDEX resources_application_name ON resources (user_name_key) WHERE kind = 'AgenticApplication';
CREATE INDEX resources_external_id ON resources (kind, external_id);
CREATE INDEX resources_display_name ON resources (kind, display_name_key);
CREATE INDEX resources_last_modified ON resources (kind, last_modified);
CREATE INDEX resources_listing ON resources (kind, created, id);
CREATE INDEX group_members_by_member ON group_members (member_id, group_id);
