-- Agents (draft-wzdk-scim-agent-resource) and AgenticApplications become resource kinds, and an
-- Agent can be a Group member.
ALTER TABLE resources DROP CONSTRAINT resources_kind_check;
ALTER TABLE resources ADD CONSTRAINT resources_kind_check
    CHECK (kind IN ('User', 'Group', 'Agent', 'AgenticApplication'));
ALTER TABLE group_members DROP CONSTRAINT group_members_member_type_check;
ALTER TABLE group_members ADD CONSTRAINT group_members_member_type_check
    CHECK (member_type IN ('User', 'Group', 'Agent'));
-- The agent user name (agentUserName, else name) becomes a Coder username: unique ignoring case
-- among agents; an application's name likewise among applications.
CREATE UNIQUE INDEX resources_agent_user_name ON resources (user_name_key) WHERE kind = 'Agent';
CREATE UNIQUE INDEX resources_application_name ON resources (user_name_key) WHERE kind = 'AgenticApplication';
