-- The load of the bench's ingest scenario, for wrk (examples/bench.rs runs it):
--
--   INGEST_ROBOTS=10000 INGEST_THREADS=2 wrk -t2 -c32 -d30s -s scripts/ingest.lua http://host:port
--
-- Event i is posted to robot i % INGEST_ROBOTS + 1 with the id "bench-<i>"; every tenth repeats
-- the one before it (same robot, same id), so that 10 % are duplicates. Thread k of
-- INGEST_THREADS posts events k, k + INGEST_THREADS, … Set INGEST_TOKEN when the service wants
-- a bearer token. At the end one line of JSON goes to standard output: the answers counted by
-- status, wrk's errors and the run's length.

local robots = tonumber(os.getenv("INGEST_ROBOTS") or "")
local threads_total = tonumber(os.getenv("INGEST_THREADS") or "")
if not robots or robots < 1 or not threads_total or threads_total < 1 then
   io.stderr:write("ingest.lua: set INGEST_ROBOTS and INGEST_THREADS (the -t given to wrk)\n")
   os.exit(2)
end

local headers = { ["Content-Type"] = "application/json" }
local token = os.getenv("INGEST_TOKEN")
if token and token ~= "" then
   headers["Authorization"] = "Bearer " .. token
end

local threads = {}

function setup(thread)
   thread:set("index", #threads)
   table.insert(threads, thread)
end

function init(args)
   sent = 0
   accepted = 0
   duplicates = 0
   refused = 0
   other = 0
   other_status = 0
end

function request()
   local i = sent * threads_total + index
   sent = sent + 1
   local original = i
   if i % 10 == 9 then
      original = i - 1
   end
   local robot = original % robots + 1
   local body = '{"id":"bench-' .. original .. '","eventName":"TOILET_ACTIVITY"}'
   return wrk.format("POST", "/internal/v1/status-jobs/robots/" .. robot .. "/events", headers, body)
end

function response(status, headers, body)
   if status == 202 then
      accepted = accepted + 1
      if string.find(body, '"duplicate":true', 1, true) then
         duplicates = duplicates + 1
      end
   elseif status == 503 then
      refused = refused + 1
   else
      other = other + 1
      other_status = status
   end
end

function done(summary, latency, requests)
   local sum = function(name)
      local total = 0
      for _, thread in ipairs(threads) do
         total = total + thread:get(name)
      end
      return total
   end
   local an_other_status = 0
   for _, thread in ipairs(threads) do
      if thread:get("other_status") ~= 0 then
         an_other_status = thread:get("other_status")
      end
   end
   local errors = summary.errors
   io.write(string.format(
      '{"duration_us": %d, "requests": %d, "accepted_202": %d, "answered_duplicate": %d, ' ..
      '"refused_503": %d, "other_status": %d, "an_other_status": %d, "errors": {"connect": %d, ' ..
      '"read": %d, "write": %d, "timeout": %d}, "latency_us": {"p50": %d, "p99": %d, "max": %d}}\n',
      summary.duration, summary.requests, sum("accepted"), sum("duplicates"), sum("refused"),
      sum("other"), an_other_status, errors.connect, errors.read, errors.write, errors.timeout,
      latency:percentile(50), latency:percentile(99), latency.max))
end
