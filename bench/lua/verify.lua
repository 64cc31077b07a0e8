-- GET /api/verify with the keys in $KEYS (one per line), each thread from its
-- own offset, so the load spreads over all of them.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local keys = {}
for line in io.lines(os.getenv("KEYS")) do
  table.insert(keys, line)
end
local i = nil
function request()
  i = ((i or (id or 1) * 7919) % #keys) + 1
  return wrk.format("GET", "/api/verify", { ["Authorization"] = "Bearer " .. keys[i] })
end
