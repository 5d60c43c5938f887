-- ack.lua: workers stored reservations in SQL; take each off the outbox, exactly once.
--
-- KEYS[1]    fs:{sale}:meta       hash: "inflight" counts units not yet in SQL, "live" the
--                                 units in live orders (pending payment or paid)
-- KEYS[2]    fs:{sale}:outbox     zset of reservations waiting for a worker
-- KEYS[3]    fs:{sale}:held       hash: user -> units held in live orders
-- KEYS[3+i]  fs:{sale}:r:<order>  hash: the i-th reservation
--
-- ARGV[2i-1] the i-th order id
-- ARGV[2i]   "persisted", or "rejected" when SQL refused it for lack of stock
--
-- Returns how many of them this call acknowledged (a repeat acknowledges nothing).

local meta_key, outbox_key, held_key = KEYS[1], KEYS[2], KEYS[3]
local acked, inflight, live = 0, 0, 0

for i = 1, #KEYS - 3 do
  local reservation_key, order_id, outcome = KEYS[3 + i], ARGV[2 * i - 1], ARGV[2 * i]
  if redis.call("ZREM", outbox_key, order_id) == 1 then
    acked = acked + 1
    local r = redis.call("HMGET", reservation_key, "user", "qty")
    local quantity = tonumber(r[2]) or 0
    inflight = inflight + quantity
    if outcome == "persisted" then
      live = live + quantity
    end
    if r[1] then
      redis.call("HSET", reservation_key, "state", outcome)
      -- A rejected order is not live: the user may buy again. Its units are not returned,
      -- since SQL refused it precisely because those units do not exist.
      if outcome == "rejected" and redis.call("HINCRBY", held_key, r[1], -quantity) <= 0 then
        redis.call("HDEL", held_key, r[1])
      end
    end
  end
end
if acked > 0 then
  -- Moved in one step, so one read of the meta hash sees every unit once.
  redis.call("HINCRBY", meta_key, "inflight", -inflight)
  if live > 0 then
    redis.call("HINCRBY", meta_key, "live", live)
  end
end
return acked
