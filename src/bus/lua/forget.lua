--[[
  Forgets consumers of a group that hold nothing and have been silent for long: every consumer
  process has a name of its own, so without this the group's consumer list would grow with every
  restart. A consumer that still holds an entry is never removed; a live one removed while idle is
  created again by its next read.

  KEYS[1] stream

  ARGV[1] group
  ARGV[2] silence in ms after which an empty consumer is forgotten

  Returns the number of consumers removed.
]]
local removed = 0
local minIdle = tonumber(ARGV[2])
for _, flat in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local c = {}
  for i = 1, #flat, 2 do
    c[flat[i]] = flat[i + 1]
  end
  if tonumber(c['pending']) == 0 and tonumber(c['idle']) >= minIdle then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], c['name'])
    removed = removed + 1
  end
end
return removed
