-- reserve.lua: decide purchases of one sale segment atomically, in one round trip.
--
-- One call decides one or more purchases (the API sends together the requests that
-- arrive in the same moment), each exactly as if it were decided alone, in order. A
-- sale spread over segments (flashsale/stock/segments.py) decides each shopper's
-- purchases in the shopper's home segment, which holds all of their state; units borrowed
-- from other segments (lend.lua) are credited here first, once per loan.
--
-- KEYS[1]     fs:{seg}:meta        hash: starts, ends (epoch ms, 0 = open), paused, closed,
--                                  limit, rate, burst, timeout (s), inflight, live,
--                                  segments (count, absent = 1), segment (this one's index),
--                                  moved (units received minus units lent), moving ("1"
--                                  while the sale is respread), epoch (respreads so far),
--                                  room ("1": only admitted shoppers may buy)
-- KEYS[2]     fs:{seg}:stock       integer: units still for sale in this segment
-- KEYS[3]     fs:{seg}:held        hash: user -> units held in live orders
-- KEYS[4]     fs:{seg}:outbox      zset: order id -> reserved_at (ms), until a worker persists it
-- KEYS[5]     broker queue list    Celery queue; written only when ARGV[1] is not empty
-- KEYS[6]     fs:{seg}:received    zset: loan id -> when it was credited here
-- KEYS[7]     fs:{seg}:adm         hash: shopper -> admitted until (ms), with a waiting room
-- KEYS[8]     fs:{seg}:room:admitted  zset of the waiting room (first segment only):
--                                  admitted shoppers who have not bought -> until
-- KEYS[9]     fs:{seg}:room:shopped   zset: admitted shoppers who bought -> until
-- and for the i-th purchase, with j = 9 + 3 * (i - 1):
-- KEYS[j+1]   fs:{seg}:rl:<user>   hash: token bucket of this user (tokens, ts)
-- KEYS[j+2]   fs:{seg}:idem:...    string: first answer for this user's Idempotency-Key
-- KEYS[j+3]   fs:{seg}:r:<order>   hash: the reservation (user, qty, reserved_at, expires_at, state)
--
-- ARGV[1]     head of the Celery message, or "" to leave publishing to the caller
-- ARGV[2]     its tail: the message is head, the admitted order ids (each as \"<id>\",
--             comma-separated), tail; one message for all purchases this call admits
-- ARGV[3]     deadline (epoch ms, Redis clock), or "0" for none: a call that reaches Redis
--             after it decides nothing, since the caller has given up on its answer
-- ARGV[4]     loans to credit first: "<loan id>:<units>:<epoch>" joined by ",", or "";
--             a loan of an earlier epoch (lent before a respread) is not credited, since
--             the respread counted its units afresh
-- and for the i-th purchase, with a = 4 + 4 * (i - 1):
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
--   {"short"}                  a segmented sale's segment lacks the units: nothing was
--                              decided (no token spent); the caller borrows and asks again
--   {"moved"}                  this segment is not the shopper's home: nothing was decided
--   {"late"}                   past the deadline: nothing was decided (no loan credited)
--   {"moving"}                 the sale is being respread: nothing was decided
--   {"not_admitted"}           the sale has a waiting room that has not let this shopper
--                              in (or their admission ran out)
-- followed by four more elements: Redis's clock (epoch ms), which the caller uses to set
-- the deadlines of its next calls; the units left in this segment; the sale's number of
-- segments; 1 when the sale has a waiting room, else 0.

local meta_key, stock_key, held_key, outbox_key, queue_key, received_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local adm_key, admitted_key, shopped_key = KEYS[7], KEYS[8], KEYS[9]
local head, tail, deadline, loans = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local count = (#KEYS - 9) / 3
local RECEIPTS_KEPT_MS = 3600000

local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local answers = {}

local segments, segment, room = 1, 0, false

local function finish()
  answers[count + 1] = now
  answers[count + 2] = tonumber(redis.call("GET", stock_key) or "0")
  answers[count + 3] = segments
  answers[count + 4] = room and 1 or 0
  return answers
end

local function all(answer)
  for i = 1, count do
    answers[i] = answer
  end
  return finish()
end

if deadline > 0 and now > deadline then
  return all({"late"})
end
local m = redis.call("HMGET", meta_key,
  "starts", "ends", "paused", "closed", "limit", "rate", "burst", "timeout",
  "segments", "segment", "moving", "epoch", "room")
if not m[5] then
  return all({"unknown_sale"})
end
if m[11] == "1" then
  return all({"moving"})
end
segments, segment = tonumber(m[9] or "1"), tonumber(m[10] or "0")
local epoch = m[12] or "0"
room = m[13] == "1"

-- Borrowed units join this segment's stock, each loan once however often it is presented.
if loans ~= "" then
  local credited = 0
  for loan_id, units, lent_in in string.gmatch(loans, "([^:,]+):(%d+):(%d+)") do
    if lent_in == epoch and redis.call("ZADD", received_key, "NX", now, loan_id) == 1 then
      credited = credited + tonumber(units)
    end
  end
  if credited > 0 then
    redis.call("INCRBY", stock_key, credited)
    redis.call("HINCRBY", meta_key, "moved", credited)
  end
  redis.call("ZREMRANGEBYSCORE", received_key, "-inf", now - RECEIPTS_KEPT_MS)
end

-- The segment holding a shopper's state, as flashsale/stock/segments.py computes it.
local function home(user)
  if segments <= 1 then
    return 0
  end
  return tonumber(string.sub(redis.sha1hex(user), 1, 8), 16) % segments
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
  if home(user) ~= segment then
    return {"moved"}
  end
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
  if room and tonumber(redis.call("HGET", adm_key, user) or "0") <= now then
    return {"not_admitted"}
  end

  -- Per-user token bucket: refill by elapsed time, spend one token per request.
  local tokens = nil
  if rate > 0 then
    local bucket = redis.call("HMGET", rate_key, "tokens", "ts")
    local last = tonumber(bucket[2]) or now
    tokens = tonumber(bucket[1]) or burst
    tokens = math.min(burst, tokens + math.max(0, now - last) * rate / 1000)
    if tokens < 1 then
      return {"rate_limited", math.ceil((1 - tokens) * 1000 / rate)}
    end
  end

  local held = tonumber(redis.call("HGET", held_key, user) or "0")
  -- A segment short of units decides nothing: the caller borrows and asks again, and the
  -- request spends its token then, once.
  local short = held + quantity <= limit and stock - taken < quantity
  if short and segments > 1 then
    return {"short"}
  end
  if tokens then
    redis.call("HSET", rate_key, "tokens", tostring(tokens - 1), "ts", now)
    redis.call("PEXPIRE", rate_key, math.ceil(burst * 1000 / rate) + 1000)
  end
  if held + quantity > limit then
    return {"limit_reached"}
  end
  if short then
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
  if room then
    -- Bought: no longer in the waiting room's budget (in the first segment; the caller
    -- tells the first segment for shoppers homed elsewhere).
    local until_ms = redis.call("ZSCORE", admitted_key, user)
    if until_ms then
      redis.call("ZREM", admitted_key, user)
      redis.call("ZADD", shopped_key, until_ms, user)
    end
  end
  admitted[#admitted + 1] = '\\"' .. order_id .. '\\"'
  return {"ok", order_id, expires, quantity, "0"}
end

for i = 1, count do
  local j, a = 9 + 3 * (i - 1), 4 + 4 * (i - 1)
  answers[i] = decide(KEYS[j + 1], KEYS[j + 2], KEYS[j + 3],
    ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3], ARGV[a + 4] == "1")
end

if head ~= "" and #admitted > 0 then
  redis.call("LPUSH", queue_key, head .. table.concat(admitted, ",") .. tail)
end
return finish()
