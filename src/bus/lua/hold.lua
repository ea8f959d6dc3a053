--[[
  Stores the owner's copy of a pending entry whose history was trimmed by retention, and counts it
  (trimmedWhilePending). The field <id> holds the server time the owner last showed it was alive
  (refreshed by touch.lua, retry.lua, begin.lua): a reclaimer leaves the entry to a live owner and,
  when the owner has gone silent, dead-letters the copy (claim.lua). ack.lua and dead-letter.lua drop
  the copy.

  KEYS[1] stream
  KEYS[2] held copies          (hash: <id> -> ms, <id>:e -> envelope JSON, <id>:r -> times requeued)
  KEYS[3] channel stats hash
  KEYS[4] handler stats hash

  ARGV[1] group
  ARGV[2] consumer
  ARGV[3] entry id
  ARGV[4] envelope JSON
  ARGV[5] times requeued so far

  Returns 1 when the copy was stored, 0 when there was nothing to do (history present, or already
  held), -1 when this consumer no longer owns the entry.
]]
local id = ARGV[3]
if #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2]) == 0 then
  return -1
end
if #redis.call('XRANGE', KEYS[1], id, id) == 1 or redis.call('HEXISTS', KEYS[2], id) == 1 then
  return 0
end
local t = redis.call('TIME')
redis.call('HSET', KEYS[2], id, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000),
  id .. ':e', ARGV[4], id .. ':r', ARGV[5])
for k = 3, 4 do
  redis.call('HINCRBY', KEYS[k], 'trimmedWhilePending', 1)
end
return 1
