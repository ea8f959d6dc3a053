--[[
  Starts an attempt that is not a first read (a retry, or an event taken over from another consumer),
  fenced: raises the entry's delivery count by one and resets its idle time. The delivery count thus
  counts attempts that started; an event claimed and kept waiting behind another never gains one.

  KEYS[1] stream
  KEYS[2] held copies          (entries of this stream trimmed while pending; see hold.lua)

  ARGV[1] group
  ARGV[2] consumer
  ARGV[3] entry id

  Returns {n, trimmed}: n is the attempt number that starts (the new delivery count), or -1 when this
  consumer no longer owns the entry. trimmed is 1 when the entry's history is gone: its delivery count
  cannot change (XCLAIM would drop it), n is then the count so far and the caller keeps the number.
]]
local id = ARGV[3]
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
if #pending == 0 then
  return {-1, 0}
end
local count = tonumber(pending[1][4])
if #redis.call('XRANGE', KEYS[1], id, id) == 1 then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'RETRYCOUNT', count + 1, 'JUSTID')
  return {count + 1, 0}
end
if redis.call('HEXISTS', KEYS[2], id) == 1 then
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[2], id, tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
end
return {count, 1}
