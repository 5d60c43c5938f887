-- bought.lua: admitted shoppers who bought leave the waiting room's budget.
--
-- reserve.lua does this itself for shoppers homed in the sale's first segment, where the
-- waiting room lives; the API calls this for shoppers homed in another segment.
--
-- KEYS[1]  fs:{sale}:room:admitted  zset: admitted shoppers who have not bought -> until
-- KEYS[2]  fs:{sale}:room:shopped   zset: admitted shoppers who bought -> until
--
-- ARGV[i]  the i-th shopper who bought
--
-- Returns how many left the budget now.

local moved = 0
for i = 1, #ARGV do
  local until_ms = redis.call("ZSCORE", KEYS[1], ARGV[i])
  if until_ms then
    redis.call("ZREM", KEYS[1], ARGV[i])
    redis.call("ZADD", KEYS[2], until_ms, ARGV[i])
    moved = moved + 1
  end
end
return moved
