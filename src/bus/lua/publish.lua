--[[
  Publishes events of one channel: history, get-by-id index, counters and live fan-out, all in one
  atomic step. The publisher coalesces the single publishes of one channel issued in the same tick
  into small calls (at most 16 events), so one EVALSHA carries one or many events.

  KEYS[1] channel stream       (history; trimmed by Redis server time to the retention)
  KEYS[2] channel stats hash   (counters)
  KEYS[3..] event index keys   (event id -> stream entry id, expire with the retention), one per event

  ARGV[1] retention in ms
  ARGV[2] live pub/sub channel name
  ARGV[3..] envelope JSON, one per event, in the order of their index keys

  Returns the stream entry ids (server time "<ms>-<seq>"), in order.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local retention = tonumber(ARGV[1])
local cutoff = now - retention
local ids = {}
local receivers = 0
-- Every event of a call has the same cutoff: the first XADD trims, the others only append.
local sid = redis.call('XADD', KEYS[1], 'MINID', '~', cutoff, '*', 'e', ARGV[3])
for i = 3, #ARGV do
  if i > 3 then
    sid = redis.call('XADD', KEYS[1], '*', 'e', ARGV[i])
  end
  redis.call('SET', KEYS[i], sid, 'PX', retention)
  receivers = receivers + redis.call('PUBLISH', ARGV[2], sid .. ' ' .. ARGV[i])
  ids[#ids + 1] = sid
end
redis.call('HINCRBY', KEYS[2], 'published', #ids)
if receivers > 0 then
  redis.call('HINCRBY', KEYS[2], 'liveDelivered', receivers)
end
return ids
