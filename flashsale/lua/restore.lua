-- restore.lua: give expired orders' units back to their sale, exactly once per order.
--
-- One call returns many orders of one sale, as the reaper finds them, in one round trip.
--
-- KEYS[1]    fs:{sale}:meta       hash; the sale must still exist; "live" counts units in
--                                 live orders
-- KEYS[2]    fs:{sale}:stock      integer: units still for sale
-- KEYS[3]    fs:{sale}:held       hash: user -> units held in live orders
-- KEYS[4]    fs:{sale}:restored   set of order ids whose units were returned
-- KEYS[4+i]  fs:{sale}:r:<order>  hash: the i-th reservation, if Redis still has it
--
-- ARGV[3i-2] the i-th order id
-- ARGV[3i-1] its user id
-- ARGV[3i]   its quantity
--
-- Returns one figure per order, in order: 1 when its units were returned now, 0 when they
-- had been before, -1 when the sale is gone from Redis (nothing to return to).

local meta_key, stock_key, held_key, restored_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local count = #KEYS - 4
local answers = {}

if redis.call("EXISTS", meta_key) == 0 then
  for i = 1, count do
    answers[i] = -1
  end
  return answers
end

local returned = 0
for i = 1, count do
  local order_id, user, quantity = ARGV[3 * i - 2], ARGV[3 * i - 1], tonumber(ARGV[3 * i])
  if redis.call("SADD", restored_key, order_id) == 0 then
    answers[i] = 0
  else
    answers[i] = 1
    returned = returned + quantity
    if redis.call("HINCRBY", held_key, user, -quantity) <= 0 then
      redis.call("HDEL", held_key, user)
    end
    local reservation_key = KEYS[4 + i]
    if redis.call("EXISTS", reservation_key) == 1 then
      redis.call("HSET", reservation_key, "state", "expired")
    end
  end
end
if returned > 0 then
  -- Moved in one step, so one read sees every unit once.
  redis.call("INCRBY", stock_key, returned)
  redis.call("HINCRBY", meta_key, "live", -returned)
end
return answers
