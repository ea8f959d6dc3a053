--[[
  Keeps a consumer's in-flight entries alive (resets their idle time so they are not reclaimed),
  fenced: entries another consumer now owns are not taken back but reported as lost.

  KEYS[1] stream

  ARGV[1] group
  ARGV[2] consumer
  ARGV[3..] entry ids

  Returns the ids this consumer no longer owns.
]]
local lost = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local owned = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
  if #owned > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
  else
    lost[#lost + 1] = id
  end
end
return lost
