-- POST $BENCH_BODY (JSON) to $BENCH_PATH: the probe component's SQL batches.
dofile(os.getenv("BENCH_LUA") .. "/report.lua")
local path, body = os.getenv("BENCH_PATH"), os.getenv("BENCH_BODY")
function request()
  return wrk.format("POST", path, { ["Content-Type"] = "application/json" }, body)
end
