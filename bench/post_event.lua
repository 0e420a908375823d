-- wrk: POST the tutorial's hook event with the bearer header, keep-alive.
-- Each request names a different resource so that every one is a new
-- delivery (no dedupe) and, for lqs-hookd, a new stored event.
local secret_b64 = os.getenv("BENCH_AUTH") or "c2VjcmV0"
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  thread_id = tid or 0
end

request = function()
  counter = counter + 1
  local rid = string.format("%08x-0000-4000-8000-%012x", thread_id, counter)
  local body = '{"previous_state":"processing","current_state":"finalizing","process_type":"digestion",' ..
               '"resource_id":"' .. rid .. '"}'
  return wrk.format("POST", "/events", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. secret_b64,
  }, body)
end

done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
                 summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT rps=%.0f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f errors=%d requests=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    errors, summary.requests))
end
