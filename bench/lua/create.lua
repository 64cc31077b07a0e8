-- POST /api/keys with names unique across runs; with $SECRETS_OUT set, each
-- thread appends the secrets it is given to $SECRETS_OUT.<thread>.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local token = os.getenv("TOKEN")
local run = tostring(os.time()) .. "-" .. tostring(math.random(1, 1e9))
local n = 0
local out = nil
function request()
  n = n + 1
  local body = '{"name":"bench-' .. run .. '-' .. (id or 0) .. '-' .. n .. '","description":"load"}'
  return wrk.format("POST", "/api/keys", {
    ["Authorization"] = "Bearer " .. token,
    ["X-Acting-User"] = "bench@example.com",
    ["Content-Type"] = "application/json",
  }, body)
end
function on_response(status, body)
  local file = os.getenv("SECRETS_OUT")
  if status == 201 and file then
    out = out or io.open(file .. "." .. (id or 0), "a")
    out:write(body:match('"secret":"(kg_[^"]+)"'), "\n")
    out:flush()
  end
end
