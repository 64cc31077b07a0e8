-- The soak's mixed traffic (bench/soak.sh), one connection per thread so each
-- answer belongs to the request before it: 90 % GET /api/verify with the keys
-- in $KEYS (never deleted), 4 % POST /api/keys, 3 % GET /api/keys, 3 % DELETE
-- of a key this thread created (a list when it has none). $DELAY_MS paces
-- each connection, for a steady rate instead of as fast as possible.
-- Prints the RESULT line of report.lua; "unexpected" counts answers that are
-- not the one the request must get (200, 201, 200, 204).
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local token = os.getenv("TOKEN")
local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")
local mgmt = {
  ["Authorization"] = "Bearer " .. token,
  ["X-Acting-User"] = "soak@example.com",
}
local keys = {}
for line in io.lines(os.getenv("KEYS")) do
  table.insert(keys, line)
end
local run = tostring(os.time()) .. "-" .. tostring(math.random(1, 1e9))
local n, i = 0, nil
local mine = {}
local want = 200
local kind = "verify"

function request()
  n = n + 1
  local r = math.random()
  if r < 0.90 then
    kind, want = "verify", 200
    i = ((i or (id or 1) * 7919) % #keys) + 1
    return wrk.format("GET", "/api/verify", { ["Authorization"] = "Bearer " .. keys[i] })
  elseif r < 0.94 then
    kind, want = "create", 201
    local body = '{"name":"soak-' .. run .. '-' .. (id or 0) .. '-' .. n .. '"}'
    local h = { ["Content-Type"] = "application/json" }
    for k, v in pairs(mgmt) do h[k] = v end
    return wrk.format("POST", "/api/keys", h, body)
  elseif r < 0.97 or #mine == 0 then
    kind, want = "list", 200
    return wrk.format("GET", "/api/keys?sort=last_used_at&order=desc&per_page=25", mgmt)
  else
    kind, want = "delete", 204
    return wrk.format("DELETE", "/api/keys/" .. table.remove(mine), mgmt)
  end
end

function delay()
  return delay_ms
end

function response(status, headers, body)
  if status ~= want then
    unexpected = unexpected + 1
    if unexpected <= 3 then
      io.stderr:write("soak: " .. kind .. " answered " .. status .. ": " .. (body or ""):sub(1, 200) .. "\n")
    end
  elseif kind == "create" then
    table.insert(mine, body:match('"id":"(key_[%w]+)"'))
  end
end
