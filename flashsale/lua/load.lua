-- load.lua: create a sale segment's stock once, or update its settings; never resets stock.
--
-- A sale of N segments is loaded one segment at a time, each with its share of the
-- stock (flashsale/stock/store.py splits it).
--
-- KEYS[1]  fs:{seg}:meta      hash: total (units loaded into this segment so far) and the
--                             sale's settings
-- KEYS[2]  fs:{seg}:stock     integer: units still for sale
-- KEYS[3]  fs:{seg}:held      hash: user -> units held in live orders
-- KEYS[4]  fs:{seg}:restored  set of order ids whose units were returned
--
-- ARGV[1]  total units of this segment
-- ARGV[2]  sku
-- ARGV[3]  starts_at, epoch ms, 0 when open
-- ARGV[4]  ends_at, epoch ms, 0 when open-ended
-- ARGV[5]  paused, "1" or "0"
-- ARGV[6]  per-user limit (units)
-- ARGV[7]  rate limit, requests per second per user (0 = off)
-- ARGV[8]  rate limit burst
-- ARGV[9]  payment timeout, seconds
-- ARGV[10] number of segments of the sale
-- ARGV[11] index of this segment
-- ARGV[12] "1" to load the segment afresh whatever Redis holds (a respread, which removed
--          the sale's other keys first), else "0"
-- ARGV[13] the sale's epoch: how many times it was respread
-- ARGV[14] units already in live orders in SQL of this segment's shoppers (0 for a new sale)
-- ARGV[15] n: how many (user, units) pairs follow, then n pairs: live orders per user,
--          then the ids of expired orders whose units SQL has not yet seen returned
--
-- A higher total adds the difference to the stock, once: loading the same total again
-- changes nothing. A lower total takes units away only while enough are unsold.
-- ARGV[14] and beyond are used only when Redis has no such sale (a new sale, one Redis
-- lost, or a respread, ARGV[12]): its state is then rebuilt from SQL, so units in live orders stay sold,
-- users keep their per-user count, and expired orders already counted as unsold are
-- marked returned (the reaper must not return them a second time).
--
-- Returns {"ok", total, remaining} or {"below_sold", loaded_total, remaining}, or
-- {"segments_differ", segments} when the sale exists with another number of segments
-- (shoppers' state would be in the wrong segments: a respread moves it, store.py).

local meta_key, stock_key, held_key, restored_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local total = tonumber(ARGV[1])

local loaded = tonumber(redis.call("HGET", meta_key, "total"))
local remaining = tonumber(redis.call("GET", stock_key) or "0")
if not loaded or ARGV[12] == "1" then
  local live = tonumber(ARGV[14] or "0")
  if total < live then
    return {"below_sold", live, 0}
  end
  remaining = total - live
  redis.call("SET", stock_key, remaining)
  redis.call("HSET", meta_key, "inflight", 0, "live", live, "closed", 0, "moving", 0,
    "moved", 0, "epoch", ARGV[13])
  redis.call("DEL", held_key)
  local pairs = tonumber(ARGV[15] or "0")
  for i = 16, 15 + 2 * pairs, 2 do
    redis.call("HSET", held_key, ARGV[i], ARGV[i + 1])
  end
  for i = 16 + 2 * pairs, #ARGV do
    redis.call("SADD", restored_key, ARGV[i])
  end
else
  local current = tonumber(redis.call("HGET", meta_key, "segments") or "1")
  if current ~= tonumber(ARGV[10]) then
    return {"segments_differ", current, remaining}
  end
  local delta = total - loaded
  if remaining + delta < 0 then
    return {"below_sold", loaded, remaining}
  end
  if delta ~= 0 then
    remaining = redis.call("INCRBY", stock_key, delta)
  end
end
redis.call("HSET", meta_key, "total", total, "sku", ARGV[2], "starts", ARGV[3],
  "ends", ARGV[4], "paused", ARGV[5], "limit", ARGV[6], "rate", ARGV[7],
  "burst", ARGV[8], "timeout", ARGV[9], "segments", ARGV[10], "segment", ARGV[11])
return {"ok", total, remaining}
