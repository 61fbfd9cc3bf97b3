-- GET /Users?filter=userName eq "...": a random stored user each request.
function init(args)
  prefix = args[1]
  count = tonumber(args[2])
  base = args[3] or "/scim/v2"
  math.randomseed(os.time() + (tonumber(tostring({}):sub(8)) or 0))
end
request = function()
  local i = math.random(1, count)
  local path = base .. "/Users?filter=userName%20eq%20%22" .. prefix .. "-" .. i .. "%40example.com%22"
  return wrk.format("GET", path)
end
