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
dofile("bench/vcon.lua")

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
  path = "/vcon?ingress_lists=" .. ingress
  head, tail = vcon_parts()
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
  io.write(string.format("RESULT seconds=%.2f requests=%d errors=%d\n",
    summary.duration / 1e6, summary.requests, errors_of(summary)))
end
