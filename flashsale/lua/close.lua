-- close.lua: end a sale for good, so that no reservation is accepted any more.
--
-- KEYS[1]  fs:{sale}:meta    hash: "closed" is set to 1; "inflight" counts units not yet in SQL
-- KEYS[2]  fs:{sale}:outbox  zset of reservations still waiting for a worker
--
-- Returns {closed, waiting}: closed is 1 when the sale exists in Redis (now closed), 0 when
-- it does not; waiting is the number of reservations in the outbox, which must reach SQL
-- before the sale's keys may be removed.

local meta_key, outbox_key = KEYS[1], KEYS[2]

if redis.call("EXISTS", meta_key) == 0 then
  return {0, redis.call("ZCARD", outbox_key)}
end
redis.call("HSET", meta_key, "closed", 1)
return {1, redis.call("ZCARD", outbox_key)}
