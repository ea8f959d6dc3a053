--[[
  Publishes events of one channel: history, counters, live fan-out and (for the few events that
  need one) the get-by-id index, all in one atomic step. The publisher coalesces the single
  publishes of one channel issued in the same tick into small calls (at most 16 events), so one
  EVALSHA carries one or many events.

  KEYS[1] channel stream       (history; trimmed by Redis server time to the retention)
  KEYS[2] channel stats hash   (counters)

  ARGV[1] retention in ms
  ARGV[2] live pub/sub channel name
  ARGV[3] on a Redis Cluster, the channel's bell (a shard channel); '' on one server. On a cluster
          the live name is a shard channel too (SPUBLISH: the fan-out costs CPU on this shard only,
          and its receiver count is exact), and the bell rings once per call for durable consumers
  ARGV[4] head of the channel's event index keys (same hash tag as KEYS; the event id is appended)
  ARGV[5] how far an id's time may be after its entry's server time without an index key (ms)
  ARGV[6] how far the entry's server time may be after its id's time without an index key (ms)
  ARGV[7..] per event, in order: its id, its envelope JSON

  A raptor id (`evt-<uuid v7>`) carries the time it was made: `get` finds the event by reading the
  stream around that time, so it needs no index key when its entry was added within the window
  (ARGV[5], ARGV[6]) of that time. Any other id (a producer's, an `evt-<uuid v4>`), or a raptor id
  outside the window, gets an index key (event id -> stream entry id) expiring with the retention.

  Returns the stream entry ids (server time "<ms>-<seq>"), in order.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local retention = tonumber(ARGV[1])
local live = ARGV[2]
local bell = ARGV[3]
local fanout = bell == '' and 'PUBLISH' or 'SPUBLISH'
local sids = {}
local receivers = 0
-- Every event of a call has the same cutoff: the first XADD trims, the others only append.
local sid = redis.call('XADD', KEYS[1], 'MINID', '~', now - retention, '*', 'e', ARGV[8])
for i = 8, #ARGV, 2 do
  if i > 8 then
    sid = redis.call('XADD', KEYS[1], '*', 'e', ARGV[i])
  end
  receivers = receivers + redis.call(fanout, live, sid .. ' ' .. ARGV[i])
  sids[#sids + 1] = sid
end
if bell ~= '' then
  redis.call('SPUBLISH', bell, #sids)
end
redis.call('HINCRBY', KEYS[2], 'published', #sids)
if receivers > 0 then
  redis.call('HINCRBY', KEYS[2], 'liveDelivered', receivers)
end
-- Entries of one call are in order: every one was added between the first's time and the last's.
local first = tonumber(string.match(sids[1], '^%d+'))
local last = tonumber(string.match(sids[#sids], '^%d+'))
local early = tonumber(ARGV[5])
local late = tonumber(ARGV[6])
for k = 1, #sids do
  local id = ARGV[5 + 2 * k]
  local ms
  -- "evt-" then 8 hex digits, "-", 4 hex digits, "-7": the time is the first 12 hex digits.
  if #id == 40 and string.byte(id, 19) == 55 and string.byte(id, 4) == 45 and string.byte(id, 1) == 101 then
    local high = tonumber(string.sub(id, 5, 12), 16)
    local low = tonumber(string.sub(id, 14, 17), 16)
    if high and low then
      ms = high * 65536 + low
    end
  end
  if not ms or ms - first > early or last - ms > late then
    redis.call('SET', ARGV[4] .. id, sids[k], 'PX', retention)
  end
end
return sids
