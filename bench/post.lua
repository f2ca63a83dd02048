-- wrk script: POST /vcon with a ~5 KB vCon, a distinct uuid per request.
-- The uuid encodes the wrk thread and a per-thread counter, so get.lua can ask for vCons that
-- exist: thread 0's first requests.
dofile("bench/vcon.lua")

local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

function init(args)
  counter = 0
  head, tail = vcon_parts()
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  counter = counter + 1
  local uuid = string.format("%08x-0000-4000-8000-%012x", tid, counter)
  return wrk.format("POST", "/vcon", headers, head .. uuid .. tail)
end

function done(summary, latency, requests)
  report_latency(summary, latency)
end
