-- POST /api/keys with names unique across runs (a random run id per thread).
local token = os.getenv("TOKEN")
math.randomseed(os.time())
local id = 0

function setup(thread)
  id = id + 1
  thread:set("tid", id .. "-" .. math.random(1, 1e9))
end

local n = 0
function request()
  n = n + 1
  local body = '{"name":"bench-' .. tid .. '-' .. n .. '","description":"load"}'
  return wrk.format("POST", "/api/keys", {
    ["Authorization"] = "Bearer " .. token,
    ["X-Acting-User"] = "bench@example.com",
    ["Content-Type"] = "application/json",
  }, body)
end

function response(status)
  if status ~= 201 then
    io.stderr:write("create failed with " .. status .. "\n")
  end
end
