--[[
  Requeues a batch of dead letters of one DLQ stream to the one handler that failed them: each entry
  is copied to the handler's requeue stream and deleted from the DLQ in the same atomic step, so an
  interrupted requeue (even kill -9) neither loses nor duplicates an entry. Entries already gone (a
  requeue that ran before) or of another handler are skipped. The batch is bounded by the caller
  (at most a few hundred ids) so that no single call blocks Redis for long.

  KEYS[1] DLQ stream                 P:ch:{C}:dlq:<reason>
  KEYS[2] requeue stream             P:ch:{C}:rq:<handler>
  KEYS[3] channel stats hash         P:ch:{C}:stats
  KEYS[4] handler stats hash         P:ch:{C}:hstats:<handler>

  ARGV[1] handler name
  ARGV[2] DLQ entry id prefix        "<C>/<reason>/" (the `dlq` field is this + the stream id)
  ARGV[3] requeue stream retention in ms (MINID trim by server time)
  ARGV[4..] DLQ stream entry ids

  Returns the number of entries moved.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local minid = now - tonumber(ARGV[3])
local moved = 0
for i = 4, #ARGV do
  local found = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #found == 1 then
    local flat = found[1][2]
    local fields = {}
    for j = 1, #flat, 2 do fields[flat[j]] = flat[j + 1] end
    if fields['handler'] == ARGV[1] then
      local requeues = (tonumber(fields['requeues']) or 0) + 1
      redis.call('XADD', KEYS[2], 'MINID', '~', minid, '*',
        'e', fields['e'] or '', 'requeues', tostring(requeues), 'dlq', ARGV[2] .. ARGV[i])
      redis.call('XDEL', KEYS[1], ARGV[i])
      moved = moved + 1
    end
  end
end
if moved > 0 then
  redis.call('HINCRBY', KEYS[3], 'requeued', moved)
  redis.call('HINCRBY', KEYS[4], 'requeued', moved)
end
return moved
