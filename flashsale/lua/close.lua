-- close.lua: end a sale segment for good, or hold it while it is respread, so that no
-- reservation is accepted any more.
--
-- KEYS[1]  fs:{seg}:meta    hash: the flag ARGV[1] names is set to 1; "inflight" counts
--                           units not yet in SQL
-- KEYS[2]  fs:{seg}:outbox  zset of reservations still waiting for a worker
--
-- ARGV[1]  "closed" (the sale ended for good) or "moving" (being respread: purchases are
--          answered "try again" until the respread loads the segments afresh)
--
-- Returns {closed, waiting}: closed is 1 when the sale exists in Redis (now closed), 0 when
-- it does not; waiting is the number of reservations in the outbox, which must reach SQL
-- before the sale's keys may be removed.

local meta_key, outbox_key = KEYS[1], KEYS[2]

if redis.call("EXISTS", meta_key) == 0 then
  return {0, redis.call("ZCARD", outbox_key)}
end
local flag = ARGV[1] == "moving" and "moving" or "closed"
redis.call("HSET", meta_key, flag, 1)
return {1, redis.call("ZCARD", outbox_key)}
