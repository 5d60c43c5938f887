-- queue.lua: shoppers join or poll a sale's waiting room; the gate advances.
--
-- One call answers every join and poll of one moment (the API sends them together), each
-- as if it came alone, in order, after the gate advanced once.
--
-- The gate needs no loop: every call first lets in as many waiting shoppers as the clock
-- allows since the last call (at most admitPerSecond, a short burst of at most a
-- twentieth of a second's worth), as the budget allows (admitted shoppers who have not
-- bought yet never exceed remaining units x overbook), expires admissions older than
-- shoppingSeconds (their budget goes to the next), and closes the queue when no unit is
-- left and none is held by an unpaid order. All of it lives in the sale's first segment.
--
-- KEYS[1]  fs:{sale}:meta           hash: the sale (starts, ends, closed, paused, live,
--                                   inflight, paid) and its room: room ("1"), room_opens,
--                                   room_draw, room_rate, room_shop, room_overbook,
--                                   room_seed, room_seq, room_last, room_tokens,
--                                   room_admissions, room_expiries
-- KEYS[2]  fs:{sale}:stock          integer: units for sale in this segment
-- KEYS[3]  fs:{sale}:room:queue     zset: waiting shopper -> place (draw score or arrival)
-- KEYS[4]  fs:{sale}:room:admitted  zset: admitted shopper who has not bought -> until (ms)
-- KEYS[5]  fs:{sale}:room:joined    zset: every shopper who joined -> the place they got
-- KEYS[6]  fs:{sale}:room:expired   set: shoppers whose admission ran out unused
-- KEYS[7]  fs:{sale}:room:shopped   zset: admitted shoppers who bought -> until (ms); their
--                                   turn reads "expired" once it is over
-- KEYS[8]  fs:{sale}:adm            hash: shopper -> admitted until (ms), what reserve.lua
--                                   checks (the shoppers homed in this segment)
--
-- ARGV[1]  units for sale over all segments, or "" to read this segment's (one segment)
-- ARGV[2]  units held by unpaid orders over all segments, or "" to read this segment's
-- and for the i-th shopper, with a = 2 + 2 * (i - 1):
-- ARGV[a+1]  "join" or "poll"
-- ARGV[a+2]  user id
--
-- Returns one answer per shopper, in order, each {status, position, ahead,
-- admitted_until, possible, waiting, now, rate in thousandths of a shopper per second}:
-- status is
-- "waiting", "admitted", "expired" or "sold_out" (the shopper's), or one of "not_open",
-- "ended", "unknown_sale", "no_waiting_room", "not_in_queue"; position is 0 while the
-- draw is pending (before the start) or when not waiting; possible is the units still
-- possible (for sale plus held by unpaid orders); waiting counts the whole queue.

local meta_key, stock_key, queue_key, admitted_key, joined_key, expired_key, shopped_key,
  adm_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local count = (#ARGV - 2) / 2
-- Places: a draw score is below 2^52 (52 bits of SHA-1); later arrivals go behind them.
local BEHIND_THE_DRAW = 4503599627370496

local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local m = redis.call("HMGET", meta_key, "starts", "ends", "closed", "room", "room_opens",
  "room_draw", "room_rate", "room_shop", "room_overbook", "room_seed", "room_last",
  "room_tokens", "live", "inflight", "paid", "limit")

local rate_milli = math.floor(tonumber(m[7] or "0") * 1000)

local function answer(status, position, ahead, until_ms, possible, waiting)
  return {status, position or 0, ahead or 0, until_ms or 0, possible or 0, waiting or 0, now,
    rate_milli}
end

local function all(status)
  local answers = {}
  for i = 1, count do
    answers[i] = answer(status)
  end
  return answers
end

if not m[16] then
  return all("unknown_sale")
end
if m[4] ~= "1" then
  return all("no_waiting_room")
end
local starts, ends = tonumber(m[1]), tonumber(m[2])
local opens = tonumber(m[5])
if opens == 0 then
  opens = starts
end
local draw = m[6] == "1"
local rate, shop, overbook = tonumber(m[7]), tonumber(m[8]) * 1000, tonumber(m[9])

local remaining = tonumber(ARGV[1] ~= "" and ARGV[1] or redis.call("GET", stock_key) or "0")
local unpaid = tonumber(ARGV[2] ~= "" and ARGV[2] or
  ((tonumber(m[13] or "0") + tonumber(m[14] or "0")) - tonumber(m[15] or "0")))
unpaid = math.max(0, unpaid)
local possible = remaining + unpaid
-- Closed: the sale ended, or no unit is left and none can come back.
local ended = m[3] == "1" or (ends > 0 and now >= ends)
local sold_out = possible <= 0

-- The gate, advanced to now.
if now >= starts and not ended then
  -- Admissions not used in time go: their budget is the next shoppers'.
  local gone = redis.call("ZRANGEBYSCORE", admitted_key, "-inf", now)
  if #gone > 0 then
    redis.call("ZREMRANGEBYSCORE", admitted_key, "-inf", now)
    for i = 1, #gone do
      redis.call("SADD", expired_key, gone[i])
    end
    redis.call("HINCRBY", meta_key, "room_expiries", #gone)
  end
  local last = tonumber(m[11] or tostring(starts))
  local burst = math.max(1, rate / 20)
  local tokens = math.min(burst, tonumber(m[12] or "1") + math.max(0, now - last) * rate / 1000)
  local budget = math.floor(remaining * overbook) - redis.call("ZCARD", admitted_key)
  local let_in = math.min(math.floor(tokens), budget)
  if let_in > 0 and not sold_out then
    local next_ones = redis.call("ZPOPMIN", queue_key, let_in)
    local until_ms = now + shop
    for i = 1, #next_ones, 2 do
      redis.call("ZADD", admitted_key, until_ms, next_ones[i])
      redis.call("HSET", adm_key, next_ones[i], until_ms)
    end
    tokens = tokens - #next_ones / 2
    redis.call("HINCRBY", meta_key, "room_admissions", #next_ones / 2)
  end
  redis.call("HSET", meta_key, "room_last", now, "room_tokens", tostring(tokens))
end

local waiting = redis.call("ZCARD", queue_key)
local function status_of(user)
  local until_ms = tonumber(redis.call("ZSCORE", admitted_key, user) or
    redis.call("ZSCORE", shopped_key, user) or "0")
  if until_ms > now then
    -- Written again for whoever asks (a respread loads the segments afresh): what
    -- reserve.lua checks for shoppers homed here; the API copies it to other homes.
    redis.call("HSET", adm_key, user, until_ms)
    return answer("admitted", 0, 0, until_ms, possible, waiting)
  end
  -- A turn that ran out, used (the shopper bought: kept, one per buyer) or not.
  if until_ms > 0 or redis.call("SISMEMBER", expired_key, user) == 1 then
    return answer("expired", 0, 0, 0, possible, waiting)
  end
  local rank = redis.call("ZRANK", queue_key, user)
  if not rank then
    return nil
  end
  if ended or sold_out then
    return answer(ended and "ended" or "sold_out", 0, 0, 0, possible, waiting)
  end
  if draw and now < starts then
    return answer("waiting", 0, 0, 0, possible, waiting)  -- the draw is pending
  end
  return answer("waiting", rank + 1, rank, 0, possible, waiting)
end

local function one(op, user)
  local found = status_of(user)
  if found then
    return found
  end
  if op ~= "join" then
    return answer("not_in_queue", 0, 0, 0, possible, waiting)
  end
  if now < opens then
    return answer("not_open", 0, 0, 0, possible, waiting)
  end
  if ended then
    return answer("ended", 0, 0, 0, possible, waiting)
  end
  if sold_out then
    return answer("sold_out", 0, 0, 0, possible, waiting)
  end
  local place
  if draw and now < starts then
    -- A place no one can predict before the seed is revealed, the same for every join.
    place = tonumber(string.sub(redis.sha1hex(m[10] .. ":" .. user), 1, 13), 16)
  else
    place = BEHIND_THE_DRAW + redis.call("HINCRBY", meta_key, "room_seq", 1)
  end
  redis.call("ZADD", queue_key, "NX", place, user)
  redis.call("ZADD", joined_key, "NX", place, user)
  waiting = redis.call("ZCARD", queue_key)
  return status_of(user)
end

local answers = {}
for i = 1, count do
  local a = 2 + 2 * (i - 1)
  answers[i] = one(ARGV[a + 1], ARGV[a + 2])
end
return answers
