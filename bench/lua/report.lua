-- Shared by the bench scripts: counts answers whose status is not $EXPECT
-- (default 200) per thread, times every request, and prints one
-- machine-readable line at the end:
--   RESULT <req/s> <p50 ms> <p99 ms> <p99.9 ms> <unexpected answers> <socket errors> <wrk's p99 ms>
--
-- The percentiles are of each request's own time, from the moment the script
-- builds it to its answer (CLOCK_MONOTONIC through LuaJIT's FFI). wrk's own
-- percentiles (the last field) are not that: before reporting, wrk adds
-- coordinated-omission corrections (stats_correct: for every request slower
-- than twice the mean interval between one connection's requests, synthetic
-- samples at that interval below it). At one connection that made 0.5 % of
-- 4 ms requests a "p99" of 4 ms while no more than 1 % of requests took over
-- 1 ms. A request is timed only while it is its thread's only one in flight,
-- so the scripts run one connection per thread (-t N -c N); otherwise the
-- percentiles print as nan.
local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *ts);
]])
local CLOCK_MONOTONIC = 1
local now = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now)
  return tonumber(now.tv_sec) * 1000000 + tonumber(now.tv_nsec) / 1000
end

local expect = tonumber(os.getenv("EXPECT") or "200")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

unexpected = 0
-- Per thread: request times in whole microseconds -> count.
timings = {}
overlapped = 0
local sent_at, answered = nil, 0

-- Runs in each thread after its script is loaded: times the script's
-- request() and response(), whichever they are.
function init(args)
  local build, handle = request, response
  request = function()
    -- Before the first answer a request may be left unanswered: wrk builds
    -- one to inspect it before it starts.
    if sent_at and answered > 0 then
      overlapped = overlapped + 1
    end
    sent_at = now_us()
    return build()
  end
  response = function(status, headers, body)
    if sent_at then
      local us = math.floor(now_us() - sent_at)
      timings[us] = (timings[us] or 0) + 1
      sent_at, answered = nil, answered + 1
    end
    handle(status, headers, body)
  end
end

-- Counts answers other than $EXPECT; a script may replace it.
function response(status, headers, body)
  if status ~= expect then
    unexpected = unexpected + 1
  end
  if on_response then
    on_response(status, body)
  end
end

-- Percentiles (ms) of the merged timings, nan when any thread had two
-- requests in flight at once.
local function percentiles(ps)
  local counts, total, valid = {}, 0, true
  for _, thread in ipairs(threads) do
    valid = valid and thread:get("overlapped") == 0
    for us, n in pairs(thread:get("timings")) do
      counts[us] = (counts[us] or 0) + n
      total = total + n
    end
  end
  local out = {}
  if not valid or total == 0 then
    for i = 1, #ps do out[i] = 0 / 0 end
    return out
  end
  local sorted = {}
  for us in pairs(counts) do table.insert(sorted, us) end
  table.sort(sorted)
  for i, p in ipairs(ps) do
    local rank, seen = math.ceil(total * p / 100), 0
    for _, us in ipairs(sorted) do
      seen = seen + counts[us]
      if seen >= rank then
        out[i] = us / 1000
        break
      end
    end
  end
  return out
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("unexpected")
  end
  local e = summary.errors
  local p = percentiles({ 50, 99, 99.9 })
  io.write(string.format("RESULT %.1f %.3f %.3f %.3f %d %d %.3f\n",
    summary.requests / (summary.duration / 1e6), p[1], p[2], p[3], bad,
    e.connect + e.read + e.write + e.timeout, latency:percentile(99) / 1000))
end
