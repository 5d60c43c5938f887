-- release.lua: a reservation that can never be stored (a dead letter) gives its units
-- back, exactly once.
--
-- The outbox entry is the reservation's ticket: whoever removes it (ack.lua once the
-- order is in SQL, or this script) settles the reservation, so one is never both stored
-- and released.
--
-- KEYS[1]  fs:{sale}:meta       hash: "inflight" counts units not yet in SQL
-- KEYS[2]  fs:{sale}:stock      integer: units still for sale
-- KEYS[3]  fs:{sale}:held       hash: user -> units held in live orders
-- KEYS[4]  fs:{sale}:outbox     zset of reservations waiting for a worker
-- KEYS[5]  fs:{sale}:r:<order>  hash: the reservation (user, qty, ...)
--
-- ARGV[1]  order id
--
-- Returns the units released now; 0 when the reservation was settled before (stored,
-- released, or unknown).

local meta_key, stock_key, held_key, outbox_key, reservation_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local order_id = ARGV[1]

if redis.call("ZREM", outbox_key, order_id) == 0 then
  return 0
end
local r = redis.call("HMGET", reservation_key, "user", "qty")
-- A reservation hash too damaged to name its quantity returns nothing rather than a guess.
local quantity = math.floor(tonumber(r[2]) or 0)
if quantity <= 0 then
  redis.call("HSET", reservation_key, "state", "dead")
  return 0
end
redis.call("INCRBY", stock_key, quantity)
redis.call("HINCRBY", meta_key, "inflight", -quantity)
if r[1] and redis.call("HINCRBY", held_key, r[1], -quantity) <= 0 then
  redis.call("HDEL", held_key, r[1])
end
redis.call("HSET", reservation_key, "state", "dead")
return quantity
