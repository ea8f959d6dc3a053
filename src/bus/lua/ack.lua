--[[
  Acknowledges events a consumer has finished, fenced: an id is acknowledged only while this
  consumer still owns it in the group's pending-entries list, so a stale consumer can never ack an
  event that another consumer has reclaimed. One XPENDING reads everything this consumer holds
  (bounded by its concurrency), one XACK acknowledges the owned ids.

  KEYS[1] stream               (a channel stream, or a handler's requeue stream)
  KEYS[2] channel stats hash
  KEYS[3] handler stats hash

  ARGV[1] group (handler name)
  ARGV[2] consumer
  ARGV[3] '1' to delete acknowledged entries (requeue streams: read by this group only)
  ARGV[4] '1' to count them as delivered and acked ('0': skipped, e.g. filtered out by type)
  ARGV[5] most entries this consumer can hold (its concurrency)
  ARGV[6..] entry ids, ascending

  Returns the ids this consumer no longer owns (not acknowledged).
]]
local held = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[6], ARGV[#ARGV], tonumber(ARGV[5]) + #ARGV, ARGV[2])
local mine = {}
for _, entry in ipairs(held) do
  mine[entry[1]] = true
end
local owned = {}
local lost = {}
for i = 6, #ARGV do
  if mine[ARGV[i]] then
    owned[#owned + 1] = ARGV[i]
  else
    lost[#lost + 1] = ARGV[i]
  end
end
if #owned > 0 then
  redis.call('XACK', KEYS[1], ARGV[1], unpack(owned))
  if ARGV[3] == '1' then
    redis.call('XDEL', KEYS[1], unpack(owned))
  end
  if ARGV[4] == '1' then
    for k = 2, 3 do
      redis.call('HINCRBY', KEYS[k], 'delivered', #owned)
      redis.call('HINCRBY', KEYS[k], 'acked', #owned)
    end
  end
end
return lost
