-- Shared by the bench scripts: counts answers whose status is not $EXPECT
-- (default 200) per thread, and prints one machine-readable line at the end:
--   RESULT <req/s> <p50 ms> <p99 ms> <p99.9 ms> <unexpected answers> <socket errors>
local expect = tonumber(os.getenv("EXPECT") or "200")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

unexpected = 0
function response(status, headers, body)
  if status ~= expect then
    unexpected = unexpected + 1
  end
  if on_response then
    on_response(status, body)
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("unexpected")
  end
  local e = summary.errors
  io.write(string.format("RESULT %.1f %.3f %.3f %.3f %d %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, bad,
    e.connect + e.read + e.write + e.timeout))
end
