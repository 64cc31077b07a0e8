-- GET $BENCH_PATH; with management credentials when $TOKEN is set.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local headers = {}
if os.getenv("TOKEN") then
  headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
  headers["X-Acting-User"] = "bench@example.com"
end
local path = os.getenv("BENCH_PATH")
function request()
  return wrk.format("GET", path, headers)
end
