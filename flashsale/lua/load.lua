-- load.lua: create a sale's stock once, or update its settings; never resets stock.
--
-- KEYS[1]  fs:{sale}:meta   hash: total (units loaded so far) and the sale's settings
-- KEYS[2]  fs:{sale}:stock  integer: units still for sale
--
-- ARGV[1]  total units (spec.stock)
-- ARGV[2]  sku
-- ARGV[3]  starts_at, epoch ms, 0 when open
-- ARGV[4]  ends_at, epoch ms, 0 when open-ended
-- ARGV[5]  paused, "1" or "0"
-- ARGV[6]  per-user limit (units)
-- ARGV[7]  rate limit, requests per second per user (0 = off)
-- ARGV[8]  rate limit burst
-- ARGV[9]  payment timeout, seconds
--
-- A higher total adds the difference to the stock, once: loading the same total again
-- changes nothing. A lower total takes units away only while enough are unsold.
--
-- Returns {"ok", total, remaining} or {"below_sold", loaded_total, remaining}.

local meta_key, stock_key = KEYS[1], KEYS[2]
local total = tonumber(ARGV[1])

local loaded = tonumber(redis.call("HGET", meta_key, "total"))
local remaining = tonumber(redis.call("GET", stock_key) or "0")
if not loaded then
  redis.call("SET", stock_key, total)
  redis.call("HSET", meta_key, "inflight", 0, "live", 0, "closed", 0)
  remaining = total
else
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
  "burst", ARGV[8], "timeout", ARGV[9])
return {"ok", total, remaining}
