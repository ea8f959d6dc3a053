--[[
  Records a failed attempt that will be retried, fenced: re-claims the entry for this consumer,
  which increments its delivery count in Redis (the attempt number survives a crash during backoff)
  and resets its idle time.

  KEYS[1] stream
  KEYS[2] channel stats hash
  KEYS[3] handler stats hash

  ARGV[1] group
  ARGV[2] consumer
  ARGV[3] entry id

  Returns the new delivery count (the next attempt number), or -1 when this consumer no longer owns it.
]]
local owned = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #owned == 0 then
  return -1
end
local count = tonumber(owned[1][4]) + 1
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'RETRYCOUNT', count, 'JUSTID')
for k = 2, 3 do
  redis.call('HINCRBY', KEYS[k], 'delivered', 1)
  redis.call('HINCRBY', KEYS[k], 'failed', 1)
  redis.call('HINCRBY', KEYS[k], 'retried', 1)
end
return count
