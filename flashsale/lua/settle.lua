-- settle.lua: forget loans the borrowing segment has credited.
--
-- Called only after the borrower's reserve.lua call (or the sweep's) has credited each
-- loan: from then on its units are in the borrowing segment's stock.
--
-- KEYS[1]  fs:{seg}:loans  hash of the lending segment: loan id -> "<to>|<units>|<lent at>|<epoch>"
--
-- ARGV[i]  the i-th loan id
--
-- Returns how many loans were settled now.

local settled = 0
for i = 1, #ARGV do
  settled = settled + redis.call("HDEL", KEYS[1], ARGV[i])
end
return settled
