-- PATCH /Groups/{id}: add one user per request to a large group, each a user not yet in it.
-- args: group id, ids file, first index of the users outside the group (1-based), wrk threads,
-- [base path].
-- The seeded group holds the first GROUP_MEMBERS ids; each wrk thread walks its own share of
-- the rest in order, so every request is a real insert (and a durable commit), not a no-op.
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  group = args[1]
  first = tonumber(args[3] or "1")
  step = tonumber(args[4] or "1")
  base = args[5] or "/scim/v2"
  ids = {}
  local n = 0
  for line in io.lines(args[2]) do
    n = n + 1
    if n >= first then table.insert(ids, line) end
  end
  -- Thread tid takes ids tid+1, tid+1+step, ...
  next_i = (tid or 0) + 1
end
request = function()
  local id = ids[next_i]
  if id == nil then
    -- Every outsider added: start over (from here on the adds are no-ops).
    next_i = (tid or 0) + 1
    id = ids[next_i]
  end
  next_i = next_i + step
  local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"' .. id .. '"}]}]}'
  return wrk.format("PATCH", base .. "/Groups/" .. group, {["Content-Type"] = "application/scim+json", ["Authorization"] = wrk.headers["Authorization"]}, body)
end
