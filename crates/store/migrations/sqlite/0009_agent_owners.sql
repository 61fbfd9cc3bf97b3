-- Which Agents a User owns, so an owner's reconcile finds its agents (the owner cascade) through
-- an index instead of reading every Agent. Rows follow each Agent's `owners` (entries of type
-- `User` or untyped) in the transaction that writes the Agent, and go with it on delete.
-- owner_id is not a foreign key: an owner may be deleted while its agents stay.
CREATE TABLE agent_owners (
    agent_id TEXT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    owner_id TEXT NOT NULL,
    PRIMARY KEY (agent_id, owner_id)
) WITHOUT ROWID;
CREATE INDEX agent_owners_by_owner ON agent_owners (owner_id, agent_id);

INSERT OR IGNORE INTO agent_owners (agent_id, owner_id)
SELECT r.id, json_extract(o.value, '$.value')
FROM resources r, json_each(r.attrs, '$.owners') o
WHERE r.kind = 'Agent'
  AND json_type(r.attrs, '$.owners') = 'array'
  AND o.type = 'object'
  AND json_type(o.value, '$.value') = 'text'
  AND (json_type(o.value, '$.type') IS NOT 'text' OR lower(json_extract(o.value, '$.type')) = 'user');
