--[[
  Parks an event that never reached a channel stream (an unknown channel) in a dead-letter queue.

  KEYS[1] DLQ stream           (of the pseudo-channel sys.dlq.routing_error)
  KEYS[2] stats hash of the DLQ pseudo-channel

  ARGV[1] event JSON
  ARGV[2] reason
  ARGV[3] original channel
  ARGV[4] error message
  ARGV[5] DLQ retention in ms

  Returns the DLQ entry id.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = redis.call('XADD', KEYS[1], 'MINID', '~', now - tonumber(ARGV[5]), '*',
  'e', ARGV[1], 'reason', ARGV[2], 'channel', ARGV[3], 'handler', '', 'error', ARGV[4],
  'attempts', '0', 'failedAt', tostring(now), 'sid', '', 'requeues', '0')
redis.call('HINCRBY', KEYS[2], 'deadLettered', 1)
return id
