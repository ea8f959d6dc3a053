--[[
  Keeps a consumer's entries alive (resets their idle time so they are not reclaimed), fenced:
  entries another consumer now owns are not taken back but reported as lost. An entry whose history
  was trimmed cannot be touched (XCLAIM would drop it from the pending list): its held copy's time is
  refreshed instead, which tells reclaimers that its owner is alive; one with no held copy yet is
  reported so that the owner stores one (hold.lua).

  KEYS[1] stream
  KEYS[2] held copies          (entries of this stream trimmed while pending; see hold.lua)

  ARGV[1] group
  ARGV[2] consumer
  ARGV[3..] entry ids

  Returns {lost ids, trimmed ids with no held copy}.
]]
local lost = {}
local trimmed = {}
local now
for i = 3, #ARGV do
  local id = ARGV[i]
  if #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2]) == 0 then
    lost[#lost + 1] = id
  elseif #redis.call('XRANGE', KEYS[1], id, id) == 1 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
  elseif redis.call('HEXISTS', KEYS[2], id) == 1 then
    if not now then
      local t = redis.call('TIME')
      now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    redis.call('HSET', KEYS[2], id, now)
  else
    trimmed[#trimmed + 1] = id
  end
end
return {lost, trimmed}
