--[[
  Looks for an event by id in one channel's history around the time its id carries (get of
  raptor's `evt-<uuid v7>` ids, which have no index key: see event-ids.ts). Reads at most ARGV[6]
  entries each way per call, so that one call holds Redis briefly; the caller goes on from the
  cursors returned. Read only.

  KEYS[1] channel stream

  ARGV[1] the needle: the id as written in JSON ("evt-…", with its quotes)
  ARGV[2] forward cursor: the entry id to read onwards from ('' when that side is done)
  ARGV[3] forward end (inclusive)
  ARGV[4] backward cursor: the entry id to read backwards from ('' when that side is done)
  ARGV[5] backward end (inclusive)
  ARGV[6] most entries to read each way

  Returns {forward cursor, backward cursor, entry id, envelope, entry id, envelope, …}: the next
  cursors ('' when that side is done) and every entry read whose envelope holds the needle (the
  caller parses them: the needle may also be in a payload).
]]
local count = tonumber(ARGV[6])
local out = {'', ''}
local function scan(entries, slot)
  for i = 1, #entries do
    local fields = entries[i][2]
    for j = 1, #fields - 1, 2 do
      if fields[j] == 'e' and string.find(fields[j + 1], ARGV[1], 1, true) then
        out[#out + 1] = entries[i][1]
        out[#out + 1] = fields[j + 1]
      end
    end
  end
  if #entries == count then
    out[slot] = '(' .. entries[#entries][1]
  end
end
if ARGV[2] ~= '' then
  scan(redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[3], 'COUNT', count), 1)
end
if ARGV[4] ~= '' then
  scan(redis.call('XREVRANGE', KEYS[1], ARGV[4], ARGV[5], 'COUNT', count), 2)
end
return out
