-- reserve.lua: decide purchases of one sale atomically, in one round trip.
--
-- One call decides one or more purchases (the API sends together the requests that
-- arrive in the same moment), each exactly as if it were decided alone, in order.
--
-- KEYS[1]     fs:{sale}:meta       hash: starts, ends (epoch ms, 0 = open), paused, closed,
--                                  limit, rate, burst, timeout (s), inflight, live
-- KEYS[2]     fs:{sale}:stock      integer: units still for sale
-- KEYS[3]     fs:{sale}:held       hash: user -> units held in live orders
-- KEYS[4]     fs:{sale}:outbox     zset: order id -> reserved_at (ms), until a worker persists it
-- KEYS[5]     broker queue list    Celery queue; written only when ARGV[1] is not empty
-- and for the i-th purchase, with j = 5 + 3 * (i - 1):
-- KEYS[j+1]   fs:{sale}:rl:<user>  hash: token bucket of this user (tokens, ts)
-- KEYS[j+2]   fs:{sale}:idem:...   string: first answer for this user's Idempotency-Key
-- KEYS[j+3]   fs:{sale}:r:<order>  hash: the reservation (user, qty, reserved_at, expires_at, state)
--
-- ARGV[1]     head of the Celery message, or "" to leave publishing to the caller
-- ARGV[2]     its tail: the message is head, the admitted order ids (each as \"<id>\",
--             comma-separated), tail; one message for all purchases this call admits
-- ARGV[3]     deadline (epoch ms, Redis clock), or "0" for none: a call that reaches Redis
--             after it decides nothing, since the caller has given up on its answer
-- and for the i-th purchase, with a = 3 + 4 * (i - 1):
-- ARGV[a+1]   user id
-- ARGV[a+2]   quantity (positive integer)
-- ARGV[a+3]   order id to use if the purchase is admitted
-- ARGV[a+4]   "1" when the request carries an Idempotency-Key, else "0"
--
-- Returns one answer per purchase, in order, each one of
--   {"ok", order_id, expires_at_ms, quantity, replayed}   replayed is "1" for a repeated key
--   {"rate_limited", retry_after_ms}
--   {"key_reused", order_id}   the Idempotency-Key was first used with another quantity
--   {"unknown_sale"} {"ended"} {"paused"} {"not_started"} {"limit_reached"} {"sold_out"}
--   {"late"}                   past the deadline: nothing was decided
-- followed by one more element, Redis's clock (epoch ms), which the caller uses to set
-- the deadlines of its next calls.

local meta_key, stock_key, held_key, outbox_key, queue_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local head, tail, deadline = ARGV[1], ARGV[2], tonumber(ARGV[3])
local count = (#KEYS - 5) / 3

local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local answers = {}

local function all(answer)
  for i = 1, count do
    answers[i] = answer
  end
  answers[count + 1] = now
  return answers
end

if deadline > 0 and now > deadline then
  return all({"late"})
end
local m = redis.call("HMGET", meta_key,
  "starts", "ends", "paused", "closed", "limit", "rate", "burst", "timeout")
if not m[5] then
  return all({"unknown_sale"})
end
local starts, ends = tonumber(m[1]), tonumber(m[2])
-- Whether the sale takes purchases at all is the same for every purchase of the call.
local closed = nil
if m[4] == "1" or (ends > 0 and now >= ends) then
  closed = "ended"
elseif m[3] == "1" then
  closed = "paused"
elseif starts > 0 and now < starts then
  closed = "not_started"
end
local limit, rate, burst = tonumber(m[5]), tonumber(m[6]), tonumber(m[7])
local expires = now + tonumber(m[8]) * 1000
local stock = tonumber(redis.call("GET", stock_key) or "0")
local taken = 0
local admitted = {}

local function decide(rate_key, idem_key, reservation_key, user, quantity, order_id, use_idem)
  -- A repeated Idempotency-Key gets the first answer back, whatever happened since
  -- (sale ended, paused, rate limit): it takes nothing, so it spends no token either.
  if use_idem then
    local first = redis.call("GET", idem_key)
    if first then
      local id, first_expires, qty = string.match(first, "^([^|]+)|(%d+)|(%d+)$")
      -- The same key with another request is refused, not answered with the first.
      if tonumber(qty) ~= quantity then
        return {"key_reused", id}
      end
      return {"ok", id, tonumber(first_expires), tonumber(qty), "1"}
    end
  end
  if closed then
    return {closed}
  end

  -- Per-user token bucket: refill by elapsed time, spend one token per request.
  if rate > 0 then
    local bucket = redis.call("HMGET", rate_key, "tokens", "ts")
    local tokens = tonumber(bucket[1]) or burst
    local last = tonumber(bucket[2]) or now
    tokens = math.min(burst, tokens + math.max(0, now - last) * rate / 1000)
    if tokens < 1 then
      return {"rate_limited", math.ceil((1 - tokens) * 1000 / rate)}
    end
    redis.call("HSET", rate_key, "tokens", tostring(tokens - 1), "ts", now)
    redis.call("PEXPIRE", rate_key, math.ceil(burst * 1000 / rate) + 1000)
  end

  local held = tonumber(redis.call("HGET", held_key, user) or "0")
  if held + quantity > limit then
    return {"limit_reached"}
  end
  if stock - taken < quantity then
    return {"sold_out"}
  end

  -- Written for each purchase as it is decided, stock first: a script stopped halfway
  -- leaves every purchase before the stop whole, and never a reservation without stock.
  taken = taken + quantity
  redis.call("DECRBY", stock_key, quantity)
  redis.call("HINCRBY", meta_key, "inflight", quantity)
  redis.call("HINCRBY", held_key, user, quantity)
  redis.call("HSET", reservation_key, "user", user, "qty", quantity,
    "reserved_at", now, "expires_at", expires, "state", "reserved")
  redis.call("ZADD", outbox_key, now, order_id)
  if use_idem then
    redis.call("SET", idem_key, order_id .. "|" .. expires .. "|" .. quantity, "PX", 86400000)
  end
  admitted[#admitted + 1] = '\\"' .. order_id .. '\\"'
  return {"ok", order_id, expires, quantity, "0"}
end

for i = 1, count do
  local j, a = 5 + 3 * (i - 1), 3 + 4 * (i - 1)
  answers[i] = decide(KEYS[j + 1], KEYS[j + 2], KEYS[j + 3],
    ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3], ARGV[a + 4] == "1")
end

if head ~= "" and #admitted > 0 then
  redis.call("LPUSH", queue_key, head .. table.concat(admitted, ",") .. tail)
end
answers[count + 1] = now
return answers
