-- PATCH /Groups/{id}: add one (new) member per request to a large group.
function init(args)
  group = args[1]
  ids_file = args[2]
  base = args[3] or "/scim/v2"
  ids = {}
  for line in io.lines(ids_file) do table.insert(ids, line) end
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8)) or 0))
end
request = function()
  local id = ids[math.random(1, #ids)]
  local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"' .. id .. '"}]}]}'
  return wrk.format("PATCH", base .. "/Groups/" .. group, {["Content-Type"] = "application/scim+json", ["Authorization"] = wrk.headers["Authorization"]}, body)
end
