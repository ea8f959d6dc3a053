--[[
  Acknowledges events a consumer has finished, fenced: an id is acknowledged only while this
  consumer still owns it in the group's pending-entries list, so a stale consumer can never ack an
  event that another consumer has reclaimed.

  KEYS[1] stream               (a channel stream, or a handler's requeue stream)
  KEYS[2] channel stats hash
  KEYS[3] handler stats hash

  ARGV[1] group (handler name)
  ARGV[2] consumer
  ARGV[3] '1' to delete acknowledged entries (requeue streams: read by this group only)
  ARGV[4] '1' to count them as delivered and acked ('0': skipped, e.g. filtered out by type)
  ARGV[5..] entry ids

  Returns the ids this consumer no longer owns (not acknowledged).
]]
local acked = 0
local lost = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local owned = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
  if #owned > 0 then
    redis.call('XACK', KEYS[1], ARGV[1], id)
    if ARGV[3] == '1' then
      redis.call('XDEL', KEYS[1], id)
    end
    acked = acked + 1
  else
    lost[#lost + 1] = id
  end
end
if acked > 0 and ARGV[4] == '1' then
  for k = 2, 3 do
    redis.call('HINCRBY', KEYS[k], 'delivered', acked)
    redis.call('HINCRBY', KEYS[k], 'acked', acked)
  end
end
return lost
