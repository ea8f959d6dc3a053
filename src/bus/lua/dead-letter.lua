--[[
  Dead-letters an event, fenced and atomic: parks it in the channel's DLQ stream for the reason
  and acknowledges the original, or does nothing when this consumer no longer owns it. Nothing can
  be lost or doubled between the two steps. The envelope is the consumer's own copy, so an event
  whose history was trimmed while it was pending is dead-lettered whole.

  KEYS[1] source stream        (channel stream, or the handler's requeue stream)
  KEYS[2] DLQ stream           (of the channel and reason)
  KEYS[3] channel stats hash
  KEYS[4] handler stats hash
  KEYS[5] held copies          (entries of the source stream trimmed while pending; see hold.lua)

  ARGV[1] group (handler name)
  ARGV[2] consumer
  ARGV[3] entry id
  ARGV[4] event JSON (or the raw entry as JSON when it is not an envelope)
  ARGV[5] reason
  ARGV[6] original channel
  ARGV[7] error message
  ARGV[8] attempts
  ARGV[9] DLQ retention in ms
  ARGV[10] times requeued so far
  ARGV[11] '1' when the handler ran (count the attempt as delivered and failed)
  ARGV[12] '1' to delete the source entry (requeue streams)

  Returns the DLQ entry id, or false when this consumer no longer owns the entry.
]]
local owned = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #owned == 0 then
  return false
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = redis.call('XADD', KEYS[2], 'MINID', '~', now - tonumber(ARGV[9]), '*',
  'e', ARGV[4], 'reason', ARGV[5], 'channel', ARGV[6], 'handler', ARGV[1], 'error', ARGV[7],
  'attempts', ARGV[8], 'failedAt', tostring(now), 'sid', ARGV[3], 'requeues', ARGV[10])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
if ARGV[12] == '1' then
  redis.call('XDEL', KEYS[1], ARGV[3])
end
redis.call('HDEL', KEYS[5], ARGV[3], ARGV[3] .. ':e', ARGV[3] .. ':r')
for k = 3, 4 do
  redis.call('HINCRBY', KEYS[k], 'deadLettered', 1)
  if ARGV[11] == '1' then
    redis.call('HINCRBY', KEYS[k], 'delivered', 1)
    redis.call('HINCRBY', KEYS[k], 'failed', 1)
  end
end
return id
