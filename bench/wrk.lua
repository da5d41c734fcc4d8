-- One wrk scenario, configured by the environment (bench/wrk.py sets it):
--   BENCH_METHOD, BENCH_PATH, BENCH_TOKEN (Bearer), BENCH_BODY (JSON; "{id}" is replaced by the next id
--   of BENCH_IDS_IN, one per line, split between the threads so that no two requests share an id),
--   BENCH_IDS_OUT (write the "id" of every 201 answer there), BENCH_THREADS.
-- Prints one line "BENCH_JSON {...}": counts per status, wrk's errors, latency percentiles (µs).
local method = os.getenv("BENCH_METHOD") or "GET"
local path = os.getenv("BENCH_PATH") or "/"
local body = os.getenv("BENCH_BODY")
local token = os.getenv("BENCH_TOKEN")
local ids_in = os.getenv("BENCH_IDS_IN")
local ids_out = os.getenv("BENCH_IDS_OUT")
local headers = {}
if token then headers["Authorization"] = "Bearer " .. token end
if body then headers["Content-Type"] = "application/json" end

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  created = {}
  ids = {}
  reused = 0
  local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
  if ids_in then
    local i = 0
    for line in io.lines(ids_in) do
      if i % nthreads == tid then table.insert(ids, line) end
      i = i + 1
    end
  end
  next_id = 1
end

function request()
  local b = body
  if b and #ids > 0 then
    b = string.gsub(b, "{id}", ids[next_id])
    next_id = next_id + 1
    if next_id > #ids then
      next_id = 1
      reused = reused + 1
    end
  end
  return wrk.format(method, path, headers, b)
end

function response(status, hdrs, resp_body)
  statuses[status] = (statuses[status] or 0) + 1
  if ids_out and status == 201 and resp_body then
    local id = string.match(resp_body, '"id"%s*:%s*"(%x+)"')
    if id then table.insert(created, id) end
  end
end

function done(summary, latency, requests)
  local all = {}
  local wrapped = 0
  local out = ids_out and io.open(ids_out, "w")
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do all[status] = (all[status] or 0) + n end
    wrapped = wrapped + thread:get("reused")
    if out then
      for _, id in ipairs(thread:get("created")) do out:write(id, "\n") end
    end
  end
  if out then out:close() end
  local parts = {}
  for status, n in pairs(all) do table.insert(parts, string.format('"%d":%d', status, n)) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"statuses":{%s},"ids_reused":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, table.concat(parts, ","), wrapped,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
