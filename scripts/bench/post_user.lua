-- Durable POST /Users: every request creates a new user (unique per thread and request).
local counter = 0

local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  prefix = args[1] or "post"
end
request = function()
  counter = counter + 1
  local name = string.format("%s-%d-%d@example.com", prefix, tid, counter)
  local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. name ..
    '","name":{"givenName":"Bench","familyName":"User"},"emails":[{"primary":true,"type":"work","value":"' .. name ..
    '"}],"displayName":"Bench User","active":true}'
  return wrk.format("POST", wrk.path, {["Content-Type"] = "application/scim+json", ["Authorization"] = wrk.headers["Authorization"]}, body)
end
