-- Which Agents a User owns, so an owner's reconcile finds its agents (the owner cascade) through
-- an index instead of reading every Agent. Rows follow each Agent's `owners` (entries of type
-- `User` or untyped) in the transaction that writes the Agent, and go with it on delete.
-- owner_id is not a foreign key: an owner may be deleted while its agents stay.
CREATE TABLE agent_owners (
    agent_id TEXT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    owner_id TEXT NOT NULL,
    PRIMARY KEY (agent_id, owner_id)
);
CREATE INDEX agent_owners_by_owner ON agent_owners (owner_id, agent_id);

INSERT INTO agent_owners (agent_id, owner_id)
SELECT r.id, o ->> 'value'
FROM resources r,
     jsonb_array_elements(CASE WHEN jsonb_typeof(r.attrs::jsonb -> 'owners') = 'array'
                               THEN r.attrs::jsonb -> 'owners' ELSE '[]'::jsonb END) o
WHERE r.kind = 'Agent'
  AND jsonb_typeof(o) = 'object'
  AND jsonb_typeof(o -> 'value') = 'string'
  AND (jsonb_typeof(o -> 'type') IS DISTINCT FROM 'string' OR lower(o ->> 'type') = 'user')
ON CONFLICT DO NOTHING;
