--[[
  Publishes a dead letter onto a channel (its original channel once valid, or --to-channel), at most
  once per DLQ entry. The DLQ stream lives under another hash tag than the target channel, so the
  publish and the DLQ deletion cannot be one cross-slot script. Instead this target-side script is
  idempotent: a marker key under the target channel's tag, keyed by the DLQ entry id, is set NX in
  the same atomic step as the publish. The caller deletes the DLQ entry afterwards; a requeue killed
  between the two finds the marker on its next run, skips the publish and only deletes the entry.

  KEYS[1] channel stream       (history)
  KEYS[2] event index key      (event id -> stream entry id)
  KEYS[3] channel stats hash   (counters)
  KEYS[4] requeue marker       P:ch:{C}:rqmark:<DLQ entry id>

  ARGV[1] envelope JSON
  ARGV[2] channel retention in ms
  ARGV[3] live pub/sub channel name
  ARGV[4] marker lifetime in ms (the DLQ retention: the entry cannot outlive it)
  ARGV[5] on a Redis Cluster, the channel's bell (the live name is then a shard channel, see
          publish.lua); '' or absent on one server

  Returns the new stream entry id, or false when this DLQ entry was already published.
]]
if redis.call('EXISTS', KEYS[4]) == 1 then
  return false
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local retention = tonumber(ARGV[2])
local sid = redis.call('XADD', KEYS[1], 'MINID', '~', now - retention, '*', 'e', ARGV[1])
redis.call('SET', KEYS[2], sid, 'PX', retention)
redis.call('SET', KEYS[4], sid, 'PX', tonumber(ARGV[4]))
local bell = ARGV[5] or ''
local receivers = redis.call(bell == '' and 'PUBLISH' or 'SPUBLISH', ARGV[3], sid .. ' ' .. ARGV[1])
if bell ~= '' then
  redis.call('SPUBLISH', bell, 1)
end
redis.call('HINCRBY', KEYS[3], 'published', 1)
redis.call('HINCRBY', KEYS[3], 'requeued', 1)
if receivers > 0 then
  redis.call('HINCRBY', KEYS[3], 'liveDelivered', receivers)
end
return sid
