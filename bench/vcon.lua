-- Shared by the wrk scripts (loaded with dofile from the repository root, where scripts/bench
-- and scripts/bench-e2e run wrk): the benchmark vCon and the error count of a run.

-- The 5.3 KB benchmark vCon around its uuid: `head .. uuid .. tail`. Two parties with tel,
-- name and mailto (five index entries), one text dialog of 600 words.
function vcon_parts()
  local words = {}
  for i = 1, 600 do words[i] = "word" .. (i % 97) end
  local text = table.concat(words, " ")
  local head = '{"uuid":"'
  local tail = '","vcon":"0.4.0","created_at":"2026-11-28T10:00:00Z","subject":"benchmark call",' ..
    '"parties":[{"tel":"+15550100","name":"Alice","role":"customer"},' ..
    '{"tel":"+15550199","name":"Bob","role":"agent","mailto":"bob@example.com"}],' ..
    '"dialog":[{"type":"text","start":"2026-11-28T10:00:00Z","duration":42.5,"parties":[0,1],' ..
    '"originator":0,"mediatype":"text/plain","encoding":"none","body":"' .. text .. '"}],' ..
    '"analysis":[],"attachments":[]}'
  return head, tail
end

-- Failed requests of a run: socket errors, timeouts, and answers that are not 2xx/3xx.
function errors_of(summary)
  local e = summary.errors
  return e.connect + e.read + e.write + e.status + e.timeout
end

-- The line scripts/bench parses: throughput and latency percentiles.
function report_latency(summary, latency)
  io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f requests=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests, errors_of(summary)))
end
