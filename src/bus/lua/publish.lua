--[[
  Publishes one event: history, get-by-id index, counters and live fan-out in one atomic step.

  KEYS[1] channel stream       (history; trimmed by Redis server time to the retention)
  KEYS[2] event index key      (event id -> stream entry id, expires with the retention)
  KEYS[3] channel stats hash   (counters)

  ARGV[1] envelope JSON
  ARGV[2] retention in ms
  ARGV[3] live pub/sub channel name

  Returns the stream entry id (server time "<ms>-<seq>").
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local retention = tonumber(ARGV[2])
local sid = redis.call('XADD', KEYS[1], 'MINID', '~', now - retention, '*', 'e', ARGV[1])
redis.call('SET', KEYS[2], sid, 'PX', retention)
local receivers = redis.call('PUBLISH', ARGV[3], sid .. ' ' .. ARGV[1])
redis.call('HINCRBY', KEYS[3], 'published', 1)
if receivers > 0 then
  redis.call('HINCRBY', KEYS[3], 'liveDelivered', receivers)
end
return sid
