-- PATCH /Groups/{id}: add one user per request to a large group, each a user not yet in it.
-- args: group id, ids file, first and last index (1-based, inclusive) of the users outside the
-- group to add, wrk threads, [base path].
-- The seeded group holds the first GROUP_MEMBERS ids; each wrk thread adds its own share of the
-- rest, so every request is a real insert (and a durable commit), not a no-op.
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  group = args[1]
  first = tonumber(args[3] or "1")
  last = tonumber(args[4] or "1000000000")
  step = tonumber(args[5] or "1")
  base = args[6] or "/scim/v2"
  -- This thread's share of the outsiders (every step-th from its own start), in random order:
  -- an IdP adds users in no particular order, and ids are time-ordered, so walking them in
  -- creation order would append to the membership index instead of inserting across it.
  ids = {}
  local n = 0
  local mine = first + (tid or 0)
  for line in io.lines(args[2]) do
    n = n + 1
    if n >= mine and n <= last and (n - mine) % step == 0 then table.insert(ids, line) end
  end
  math.randomseed(os.time() + (tid or 0) * 7919)
  for i = #ids, 2, -1 do
    local j = math.random(1, i)
    ids[i], ids[j] = ids[j], ids[i]
  end
  next_i = 1
end
request = function()
  local id = ids[next_i]
  if id == nil then
    -- Every outsider added: start over (from here on the adds are no-ops).
    next_i = 1
    id = ids[next_i]
  end
  next_i = next_i + 1
  local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"' .. id .. '"}]}]}'
  return wrk.format("PATCH", base .. "/Groups/" .. group, {["Content-Type"] = "application/scim+json", ["Authorization"] = wrk.headers["Authorization"]}, body)
end
