-- wrk script of the end-to-end benchmark's loader: POST exactly E2E_COUNT distinct ~5 KB vCons
-- to /vcon?ingress_lists=<E2E_INGRESS>, then stop. Used with `conserver --role api`, so the
-- vCons are stored and queued exactly as the API does it, and nothing consumes them yet.
--
-- wrk has no request count, only a duration, so each of the E2E_THREADS threads (which must
-- equal wrk's -t) owns a quota of the count and stops itself once its quota of 201 answers has
-- come back. A connection that asks for a request after its thread's quota was handed out gets
-- a harmless GET /health. A POST that fails is not retried: the thread then never reaches its
-- quota, wrk runs to its -d limit, and scripts/bench-e2e sees a short ingress list.
-- wrk 4.1 calls request() once on thread 0 to check the script and never sends that request,
-- so thread 0 builds one POST more than its quota (its uuid counter 1 is never posted).
-- The uuid encodes the thread and a per-thread counter: e2e00000-000<thread>-4000-8000-<counter>.
local count = tonumber(os.getenv("E2E_COUNT") or "20000")
local nthreads = tonumber(os.getenv("E2E_THREADS") or "2")
local ingress = os.getenv("E2E_INGRESS") or "e2e_ingress"
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

function init(args)
  -- The first (count % nthreads) threads take one more.
  quota = math.floor(count / nthreads) + ((tid < count % nthreads) and 1 or 0)
  to_build = quota + ((tid == 0) and 1 or 0)
  sent = 0
  created = 0
  local words = {}
  for i = 1, 600 do words[i] = "word" .. (i % 97) end
  local text = table.concat(words, " ")
  path = "/vcon?ingress_lists=" .. ingress
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
  if sent >= to_build then
    return wrk.format("GET", "/health")
  end
  sent = sent + 1
  local uuid = string.format("e2e00000-%04x-4000-8000-%012x", tid, sent)
  return wrk.format("POST", path, headers, head .. uuid .. tail)
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
    if created >= quota then wrk.thread:stop() end
  end
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT seconds=%.2f requests=%d errors=%d\n",
    summary.duration / 1e6, summary.requests, errors))
end
