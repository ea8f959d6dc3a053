--[[
  Acknowledges events a consumer has finished, fenced: an id is acknowledged only while this
  consumer still owns it in the group's pending-entries list, so a stale consumer can never ack an
  event that another consumer has reclaimed. Ownership is read with one XPENDING over the ids' range
  for this consumer; only when that reply was cut short by its COUNT (the consumer holds many more
  entries in the range) are the ids it did not show checked one XPENDING each, so the check holds
  however many entries the consumer holds. Drops the held copy of an entry whose history was
  trimmed while pending.

  KEYS[1] stream               (a channel stream, or a handler's requeue stream)
  KEYS[2] channel stats hash
  KEYS[3] handler stats hash
  KEYS[4] held copies          (entries of this stream trimmed while pending; see hold.lua)

  ARGV[1] group (handler name)
  ARGV[2] consumer
  ARGV[3] '1' to delete acknowledged entries (requeue streams: read by this group only)
  ARGV[4] '1' to count them as delivered and acked ('0': skipped, e.g. filtered out by type)
  ARGV[5..] entry ids, ascending

  Returns the ids this consumer no longer owns (not acknowledged).
]]
local owned = {}
local lost = {}
local count = 2 * (#ARGV - 4) + 16
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[5], ARGV[#ARGV], count, ARGV[2])
local mine = {}
for _, p in ipairs(pending) do
  mine[p[1]] = true
end
local complete = #pending < count
for i = 5, #ARGV do
  local id = ARGV[i]
  if mine[id] or (not complete and #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2]) == 1) then
    owned[#owned + 1] = id
  else
    lost[#lost + 1] = id
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
  if redis.call('EXISTS', KEYS[4]) == 1 then
    for _, id in ipairs(owned) do
      redis.call('HDEL', KEYS[4], id, id .. ':e', id .. ':r')
    end
  end
end
return lost
