-- flashsale.lua: wrk script for the FlashSale benchmark.
--
-- Every request comes from another user (token taken round robin from a file, one JWT a
-- line) and, when asked, carries its own Idempotency-Key, so no answer is a replay.
-- At the end it prints one JSON line (prefixed "RESULT ") with throughput, latency
-- percentiles in microseconds, socket errors and the count of each HTTP status
-- as [code, count] pairs, one pair per thread and code.
--
-- Environment:
--   BENCH_METHOD   GET or POST (default POST)
--   BENCH_TOKENS   file of JWTs, one a line; absent: no Authorization header
--   BENCH_BODY     request body (default none)
--   BENCH_IDEM     "1": a fresh Idempotency-Key on every request
--   BENCH_NONCE    makes this run's keys differ from every other run's
--   BENCH_THREADS  wrk's thread count: each thread starts on its own share of the users
--   BENCH_PATHS    file of request paths, one a line: each request takes one at random
--                  (a path listed twice is asked twice as often); absent: the URL's path
--
-- The path comes from the URL given to wrk unless BENCH_PATHS names others.

local method = os.getenv("BENCH_METHOD") or "POST"
local token_file = os.getenv("BENCH_TOKENS")
local body = os.getenv("BENCH_BODY")
local use_idem = os.getenv("BENCH_IDEM") == "1"
local nonce = os.getenv("BENCH_NONCE") or "0"
local thread_count = tonumber(os.getenv("BENCH_THREADS") or "1")
local path_file = os.getenv("BENCH_PATHS")

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local tokens = {}
local paths = {}
local sent = 0
counts = {}

function init(args)
  if token_file then
    for line in io.lines(token_file) do
      if #line > 0 then
        tokens[#tokens + 1] = "Bearer " .. line
      end
    end
  end
  -- Each thread starts on its own share of the users, so together they reach every
  -- user in one pass instead of walking in step.
  sent = math.floor((id - 1) * #tokens / thread_count)
  if path_file then
    for line in io.lines(path_file) do
      if #line > 0 then
        paths[#paths + 1] = line
      end
    end
    -- At random rather than in turn, so that which user asks which path does not
    -- follow from the two lists' lengths.
    math.randomseed(id)
  end
end

function request()
  sent = sent + 1
  local headers = {}
  if #tokens > 0 then
    headers["Authorization"] = tokens[sent % #tokens + 1]
  end
  if use_idem then
    headers["Idempotency-Key"] = nonce .. "-" .. id .. "-" .. sent
  end
  if body then
    headers["Content-Type"] = "application/json"
  end
  local path = nil
  if #paths > 0 then
    path = paths[math.random(#paths)]
  end
  return wrk.format(method, path, headers, body)
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local status = {}
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    for code, n in pairs(c) do
      status[#status + 1] = string.format('[%d, %d]', code, n)
    end
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f, "socket_errors": ' ..
    '{"connect": %d, "read": %d, "write": %d, "timeout": %d}, "status": [%s]}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.timeout, table.concat(status, ", ")))
end
