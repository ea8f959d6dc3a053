--[[
  Registers an agent's heartbeat, stamped with Redis server time (never the agent's clock), and
  forgets agents silent for longer than the prune age.

  KEYS[1] agents hash          (agent id -> heartbeat JSON)

  ARGV[1] agent id
  ARGV[2] heartbeat JSON object without lastSeen (must start with '{' and have at least one field)
  ARGV[3] prune age in ms      (agents silent for longer are removed; 0 keeps them)

  Returns the server time in ms.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], '{"lastSeen":' .. now .. ',' .. string.sub(ARGV[2], 2))
local prune = tonumber(ARGV[3])
if prune > 0 then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local seen = tonumber(string.match(all[i + 1], '"lastSeen":(%d+)'))
    if seen and now - seen > prune then
      redis.call('HDEL', KEYS[1], all[i])
    end
  end
end
return now
