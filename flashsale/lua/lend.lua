-- lend.lua: take units out of one segment of a sale, for another segment, as a loan.
--
-- The units leave this segment's stock and wait in its loans hash until the borrowing
-- segment has credited them (reserve.lua, which credits each loan id once) and the loan
-- is settled (settle.lua). A borrower that dies in between leaves the loan for the sweep,
-- which credits it and settles it, so a unit in transit is never lost or doubled.
--
-- KEYS[1]  fs:{seg}:meta   hash of the lending segment; "moved" counts units received
--                          minus units lent; "moving" is "1" while the sale is respread;
--                          "epoch" counts its respreads
-- KEYS[2]  fs:{seg}:stock  integer: units still for sale in the lending segment
-- KEYS[3]  fs:{seg}:loans  hash: loan id -> "<borrowing segment>|<units>|<lent at,
--                          ms>|<epoch>"
--
-- ARGV[1]  loan id (unique; a repeated id lends nothing more)
-- ARGV[2]  name of the borrowing segment (its hash tag)
-- ARGV[3]  units wanted (positive integer); fewer are lent when fewer are left
-- ARGV[4]  deadline (epoch ms, Redis clock), or "0": a call reaching Redis later lends
--          nothing, since the borrower has given up on it
--
-- Returns {units lent, units left here, Redis's clock (epoch ms), epoch}; units lent is
-- -1 while the sale is being respread (nothing lent, and none may be counted on).

local meta_key, stock_key, loans_key = KEYS[1], KEYS[2], KEYS[3]
local loan_id, borrower, wanted, deadline =
  ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])

local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stock = tonumber(redis.call("GET", stock_key) or "0")
local m = redis.call("HMGET", meta_key, "total", "moving", "epoch")
local epoch = tonumber(m[3] or "0")

if m[2] == "1" then
  return {-1, stock, now, epoch}
end
if (deadline > 0 and now > deadline) or not m[1]
    or redis.call("HEXISTS", loans_key, loan_id) == 1 then
  return {0, stock, now, epoch}
end
local units = math.min(stock, wanted)
if units <= 0 then
  return {0, stock, now, epoch}
end
redis.call("DECRBY", stock_key, units)
redis.call("HINCRBY", meta_key, "moved", -units)
redis.call("HSET", loans_key, loan_id, borrower .. "|" .. units .. "|" .. now .. "|" .. epoch)
return {units, stock - units, now, epoch}
