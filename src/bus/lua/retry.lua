--[[
  Records a failed attempt that will be retried, fenced: counts it and resets the entry's idle time
  (so that it is not reclaimed during the backoff). The delivery count is not raised here: it grows
  when the next attempt starts (begin.lua), so that it counts attempts that ran, never ones that a
  crash prevented.

  KEYS[1] stream
  KEYS[2] channel stats hash
  KEYS[3] handler stats hash
  KEYS[4] held copies          (entries of this stream trimmed while pending; see hold.lua)

  ARGV[1] group
  ARGV[2] consumer
  ARGV[3] entry id

  Returns 0, or -1 when this consumer no longer owns the entry, or 1 when its history was trimmed
  and this consumer holds no copy of it yet (the caller then calls hold.lua).
]]
local id = ARGV[3]
if #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2]) == 0 then
  return -1
end
for k = 2, 3 do
  redis.call('HINCRBY', KEYS[k], 'delivered', 1)
  redis.call('HINCRBY', KEYS[k], 'failed', 1)
  redis.call('HINCRBY', KEYS[k], 'retried', 1)
end
if #redis.call('XRANGE', KEYS[1], id, id) == 1 then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
  return 0
end
-- History trimmed: XCLAIM would drop the pending entry. Refresh the held copy's sign of life instead.
if redis.call('HEXISTS', KEYS[4], id) == 1 then
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[4], id, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  return 0
end
return 1
