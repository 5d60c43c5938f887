-- reserve.lua: decide one purchase atomically, in one round trip.
--
-- KEYS[1]  fs:{sale}:meta       hash: starts, ends (epoch ms, 0 = open), paused, closed,
--                               limit, rate, burst, timeout (s), inflight, live
-- KEYS[2]  fs:{sale}:stock      integer: units still for sale
-- KEYS[3]  fs:{sale}:held       hash: user -> units held in live orders
-- KEYS[4]  fs:{sale}:rl:<user>  hash: token bucket of this user (tokens, ts)
-- KEYS[5]  fs:{sale}:idem:...   string: first answer for this user's Idempotency-Key
-- KEYS[6]  fs:{sale}:outbox     zset: order id -> reserved_at (ms), until a worker persists it
-- KEYS[7]  fs:{sale}:r:<order>  hash: the reservation (user, qty, reserved_at, expires_at, state)
-- KEYS[8]  broker queue list    Celery queue; written only when ARGV[4] is not empty
--
-- ARGV[1]  user id
-- ARGV[2]  quantity (positive integer)
-- ARGV[3]  order id to use if the purchase is admitted
-- ARGV[4]  Celery message to push on KEYS[8], or "" to leave publishing to the caller
-- ARGV[5]  "1" when the request carries an Idempotency-Key, else "0"
--
-- Returns one of
--   {"ok", order_id, expires_at_ms, quantity, replayed}   replayed is "1" for a repeated key
--   {"rate_limited", retry_after_ms}
--   {"unknown_sale"} {"ended"} {"paused"} {"not_started"} {"limit_reached"} {"sold_out"}

local meta_key, stock_key, held_key, rate_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local idem_key, outbox_key, reservation_key, queue_key = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local user = ARGV[1]
local quantity = tonumber(ARGV[2])
local order_id = ARGV[3]
local message = ARGV[4]
local use_idem = ARGV[5] == "1"

local m = redis.call("HMGET", meta_key,
  "starts", "ends", "paused", "closed", "limit", "rate", "burst", "timeout")
if not m[5] then
  return {"unknown_sale"}
end

-- A repeated Idempotency-Key gets the first answer back, whatever happened since
-- (sale ended, paused, rate limit): it takes nothing, so it spends no token either.
if use_idem then
  local first = redis.call("GET", idem_key)
  if first then
    local id, expires, qty = string.match(first, "^([^|]+)|(%d+)|(%d+)$")
    return {"ok", id, tonumber(expires), tonumber(qty), "1"}
  end
end

local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local starts, ends = tonumber(m[1]), tonumber(m[2])
if m[4] == "1" or (ends > 0 and now >= ends) then
  return {"ended"}
end
if m[3] == "1" then
  return {"paused"}
end
if starts > 0 and now < starts then
  return {"not_started"}
end

-- Per-user token bucket: refill by elapsed time, spend one token per request.
local rate, burst = tonumber(m[6]), tonumber(m[7])
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
if held + quantity > tonumber(m[5]) then
  return {"limit_reached"}
end
if tonumber(redis.call("GET", stock_key) or "0") < quantity then
  return {"sold_out"}
end

local expires = now + tonumber(m[8]) * 1000
redis.call("DECRBY", stock_key, quantity)
redis.call("HINCRBY", held_key, user, quantity)
redis.call("HINCRBY", meta_key, "inflight", quantity)
redis.call("HSET", reservation_key, "user", user, "qty", quantity,
  "reserved_at", now, "expires_at", expires, "state", "reserved")
redis.call("ZADD", outbox_key, now, order_id)
if use_idem then
  redis.call("SET", idem_key, order_id .. "|" .. expires .. "|" .. quantity, "PX", 86400000)
end
if message ~= "" then
  redis.call("LPUSH", queue_key, message)
end
return {"ok", order_id, expires, quantity, "0"}
