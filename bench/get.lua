-- wrk script: GET /vcon/{uuid} of vCons stored by post.lua (thread 0's first N requests).
-- wrk builds one request per thread at start and never sends it, so counter 1 is skipped.
dofile("bench/vcon.lua")

local stored = tonumber(os.getenv("BENCH_STORED") or "1000")

function init(args)
  math.randomseed(os.time())
end

function request()
  local uuid = string.format("%08x-0000-4000-8000-%012x", 0, math.random(2, stored + 1))
  return wrk.format("GET", "/vcon/" .. uuid)
end

function done(summary, latency, requests)
  report_latency(summary, latency)
end
