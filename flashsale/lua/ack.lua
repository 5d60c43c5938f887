-- ack.lua: a worker stored the reservation in SQL; take it off the outbox, exactly once.
--
-- KEYS[1]  fs:{sale}:meta       hash: "inflight" counts units not yet in SQL, "live" the
--                               units in live orders (pending payment or paid)
-- KEYS[2]  fs:{sale}:outbox     zset of reservations waiting for a worker
-- KEYS[3]  fs:{sale}:r:<order>  hash: the reservation
-- KEYS[4]  fs:{sale}:held       hash: user -> units held in live orders
--
-- ARGV[1]  order id
-- ARGV[2]  "persisted", or "rejected" when SQL refused it for lack of stock
--
-- Returns 1 when this call acknowledged it, 0 when it had been acknowledged before.

local meta_key, outbox_key, reservation_key, held_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local order_id, outcome = ARGV[1], ARGV[2]

if redis.call("ZREM", outbox_key, order_id) == 0 then
  return 0
end
local r = redis.call("HMGET", reservation_key, "user", "qty")
local quantity = tonumber(r[2]) or 0
redis.call("HINCRBY", meta_key, "inflight", -quantity)
if outcome == "persisted" then
  -- Moved in the same step as inflight, so one read of the meta hash sees every unit once.
  redis.call("HINCRBY", meta_key, "live", quantity)
end
if r[1] then
  redis.call("HSET", reservation_key, "state", outcome)
  -- A rejected order is not live: the user may buy again. Its units are not returned,
  -- since SQL refused it precisely because those units do not exist.
  if outcome == "rejected" and redis.call("HINCRBY", held_key, r[1], -quantity) <= 0 then
    redis.call("HDEL", held_key, r[1])
  end
end
return 1
