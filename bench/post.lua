-- wrk script: POST /vcon with a ~5 KB vCon, a distinct uuid per request.
-- The uuid encodes the wrk thread and a per-thread counter, so get.lua can ask for vCons that
-- exist: thread 0's first requests.
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  local words = {}
  for i = 1, 600 do words[i] = "word" .. (i % 97) end
  local text = table.concat(words, " ")
  head = '{"uuid":"'
  tail = '","vcon":"0.4.0","created_at":"2026-11-28T10:00:00Z","subject":"benchmark call",' ..
    '"parties":[{"tel":"+15550100","name":"Alice","role":"customer"},' ..
    '{"tel":"+15550199","name":"Bob","role":"agent","mailto":"bob@example.com"}],' ..
    '"dialog":[{"type":"text","start":"2026-11-28T10:00:00Z","duration":42.5,"parties":[0,1],' ..
    '"originator":0,"mediatype":"text/plain","encoding":"none","body":"' .. text .. '"}],' ..
    '"analysis":[],"attachments":[]}'
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  counter = counter + 1
  local uuid = string.format("%08x-0000-4000-8000-%012x", tid, counter)
  return wrk.format("POST", "/vcon", headers, head .. uuid .. tail)
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f requests=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests, errors))
end
