-- restore.lua: give an expired order's units back to the sale, exactly once per order.
--
-- KEYS[1]  fs:{sale}:meta       hash; the sale must still exist; "live" counts units in
--                               live orders
-- KEYS[2]  fs:{sale}:stock      integer: units still for sale
-- KEYS[3]  fs:{sale}:held       hash: user -> units held in live orders
-- KEYS[4]  fs:{sale}:restored   set of order ids whose units were returned
-- KEYS[5]  fs:{sale}:r:<order>  hash: the reservation, if Redis still has it
--
-- ARGV[1]  order id
-- ARGV[2]  user id
-- ARGV[3]  quantity
--
-- Returns 1 when the units were returned now, 0 when they had been before,
-- -1 when the sale is gone from Redis (nothing to return to).

local meta_key, stock_key, held_key, restored_key, reservation_key =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local order_id, user, quantity = ARGV[1], ARGV[2], tonumber(ARGV[3])

if redis.call("EXISTS", meta_key) == 0 then
  return -1
end
if redis.call("SADD", restored_key, order_id) == 0 then
  return 0
end
redis.call("INCRBY", stock_key, quantity)
redis.call("HINCRBY", meta_key, "live", -quantity)
if redis.call("HINCRBY", held_key, user, -quantity) <= 0 then
  redis.call("HDEL", held_key, user)
end
if redis.call("EXISTS", reservation_key) == 1 then
  redis.call("HSET", reservation_key, "state", "expired")
end
return 1
