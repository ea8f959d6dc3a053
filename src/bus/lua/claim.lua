--[[
  Takes over entries that other consumers of the group left idle for too long (they died or stall),
  for a live consumer. Unlike XAUTOCLAIM it never drops an entry whose history was trimmed while it
  was pending: such an entry stays with an owner that still shows signs of life (its held copy is
  fresh, see hold.lua); when the owner has gone silent the entry is dead-lettered from the held copy
  (reason max_retries_exceeded, saying why), so it is never gone without a trace. Claiming uses
  JUSTID: the delivery count is not raised (begin.lua raises it when an attempt really starts).

  KEYS[1] stream
  KEYS[2] held copies          (entries of this stream trimmed while pending; see hold.lua)
  KEYS[3] DLQ stream           (of the channel, reason max_retries_exceeded)
  KEYS[4] channel stats hash
  KEYS[5] handler stats hash

  ARGV[1] group
  ARGV[2] consumer (the claimer)
  ARGV[3] idle time in ms after which an entry is taken over
  ARGV[4] scan start: '-' or '(<id>' (exclusive)
  ARGV[5] most entries to claim
  ARGV[6] most pending entries to scan
  ARGV[7] channel (the DLQ entry's original channel)
  ARGV[8] DLQ retention in ms
  ARGV[9] '1' when KEYS[1] is a requeue stream (a dead-lettered entry is deleted from it)

  Returns {next scan start ('-' when the scan wrapped), claimed, gone}: claimed is a list of
  {id, delivery count, fields, previous owner}; gone is a list of {id, owner} dead-lettered here.
]]
local group, me = ARGV[1], ARGV[2]
local minIdle = tonumber(ARGV[3])
local want = tonumber(ARGV[5])
local scan = tonumber(ARGV[6])
local pending = redis.call('XPENDING', KEYS[1], group, 'IDLE', minIdle, ARGV[4], '+', scan)
local claimed = {}
local gone = {}
local cursor = '-'
local now
for i, entry in ipairs(pending) do
  if #claimed >= want then
    break
  end
  local id, owner = entry[1], entry[2]
  cursor = '(' .. id
  if owner ~= me then
    local found = redis.call('XRANGE', KEYS[1], id, id)
    if #found == 1 then
      if #redis.call('XCLAIM', KEYS[1], group, me, minIdle, id, 'JUSTID') == 1 then
        claimed[#claimed + 1] = {id, entry[4], found[1][2], owner}
      end
    else
      if not now then
        local t = redis.call('TIME')
        now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
      end
      local seen = tonumber(redis.call('HGET', KEYS[2], id))
      if not seen or now - seen >= minIdle then
        local copy = redis.call('HGET', KEYS[2], id .. ':e')
        local why = 'its consumer ' .. owner .. ' stopped while holding it and its history was trimmed by retention'
        if copy then
          why = why .. '; dead-lettered from the copy the consumer held: requeue it to run it again'
        else
          why = why .. '; no copy of the envelope survived'
        end
        redis.call('XADD', KEYS[3], 'MINID', '~', now - tonumber(ARGV[8]), '*',
          'e', copy or '', 'reason', 'max_retries_exceeded', 'channel', ARGV[7], 'handler', group,
          'error', why, 'attempts', tostring(entry[4]), 'failedAt', tostring(now), 'sid', id,
          'requeues', redis.call('HGET', KEYS[2], id .. ':r') or '0')
        redis.call('XACK', KEYS[1], group, id)
        if ARGV[9] == '1' then
          redis.call('XDEL', KEYS[1], id)
        end
        redis.call('HDEL', KEYS[2], id, id .. ':e', id .. ':r')
        for k = 4, 5 do
          redis.call('HINCRBY', KEYS[k], 'deadLettered', 1)
          if not seen then
            redis.call('HINCRBY', KEYS[k], 'trimmedWhilePending', 1)
          end
        end
        gone[#gone + 1] = {id, owner}
      end
    end
  end
  if i == #pending and #pending < scan then
    cursor = '-'
  end
end
if #claimed > 0 then
  for k = 4, 5 do
    redis.call('HINCRBY', KEYS[k], 'duplicates', #claimed)
  end
end
return {cursor, claimed, gone}
