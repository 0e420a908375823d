-- wrk: POST S3 notifications to /objects, BENCH_RECORDS records per request
-- (default 1), every key new (no duplicates), a folder per 1000 keys so
-- that objects join batches as they would.
local token = os.getenv("BENCH_TOKEN") or "token"
local per = tonumber(os.getenv("BENCH_RECORDS") or "1")
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  thread_id = tid or 0
end

local function record(n)
  return string.format('{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put",' ..
    '"s3":{"bucket":{"name":"bench-bucket"},"object":{"key":"t%d/run%d/f%d.bin","size":1024,' ..
    '"sequencer":"%016x"}}}', thread_id, math.floor(n / 1000), n, n)
end

request = function()
  local recs = {}
  for i = 1, per do
    counter = counter + 1
    recs[i] = record(counter)
  end
  return wrk.format("POST", "/objects", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }, '{"Records":[' .. table.concat(recs, ",") .. ']}')
end

done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
                 summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT rps=%.0f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f errors=%d requests=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    errors, summary.requests))
end
