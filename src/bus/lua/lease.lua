--[[
  An agent id lease: at most one live agent per id. The holder renews it well within its lifetime;
  when the holder dies the lease lapses and the id is free again.

  KEYS[1] lease key            P:lease:agent:<id>

  ARGV[1] 'take' (acquire or renew) or 'drop' (release)
  ARGV[2] this agent's lease value (unique per process: JSON with pid, host, start)
  ARGV[3] lifetime in ms

  Returns false when taken (or dropped), or the current holder's value and its remaining ms when
  another agent holds it.
]]
local current = redis.call('GET', KEYS[1])
if ARGV[1] == 'drop' then
  if current == ARGV[2] then
    redis.call('DEL', KEYS[1])
  end
  return false
end
if current and current ~= ARGV[2] then
  return {current, redis.call('PTTL', KEYS[1])}
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3]))
return false
