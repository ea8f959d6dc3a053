--[[
  Publishes events of one channel: history, get-by-id index, counters and live fan-out, all in one
  atomic step. The publisher coalesces the events of one channel issued in the same tick into one
  call, so one EVALSHA carries one or many events.

  KEYS[1] channel stream       (history; trimmed by Redis server time to the retention)
  KEYS[2] channel stats hash   (counters)
  KEYS[3..] event index keys   (event id -> stream entry id, expire with the retention), one per event

  ARGV[1] retention in ms
  ARGV[2] live pub/sub channel name
  ARGV[3] on a Redis Cluster, the channel's bell (a shard channel); '' on one server. On a cluster
          the live name is a shard channel too (SPUBLISH: the fan-out costs CPU on this shard only,
          and its receiver count is exact), and the bell rings once per call for durable consumers
  ARGV[4..] envelope JSON, one per event, in the order of their index keys

  Returns the stream entry ids (server time "<ms>-<seq>"), in order.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local retention = tonumber(ARGV[1])
local cutoff = now - retention
local bell = ARGV[3]
local fanout = bell == '' and 'PUBLISH' or 'SPUBLISH'
local ids = {}
local receivers = 0
for i = 4, #ARGV do
  local sid = redis.call('XADD', KEYS[1], 'MINID', '~', cutoff, '*', 'e', ARGV[i])
  redis.call('SET', KEYS[i - 1], sid, 'PX', retention)
  receivers = receivers + redis.call(fanout, ARGV[2], sid .. ' ' .. ARGV[i])
  ids[#ids + 1] = sid
end
if bell ~= '' then
  redis.call('SPUBLISH', bell, #ids)
end
redis.call('HINCRBY', KEYS[2], 'published', #ids)
if receivers > 0 then
  redis.call('HINCRBY', KEYS[2], 'liveDelivered', receivers)
end
return ids
