-- Read a room's messages after a seq, for a member.
-- KEYS[1] members hash  KEYS[2] messages list
-- ARGV[1] caller's token hash  ARGV[2] after (seq)  ARGV[3] max count
-- Returns {marker, entries…}, or an error reply UNAUTHORIZED. Entry i of the
-- list has seq i+1, so "after N" starts at index N.
local marker = redis.call('HGET', KEYS[1], ARGV[1])
if not marker then return redis.error_reply('UNAUTHORIZED not a member') end
local from = tonumber(ARGV[2])
local out = redis.call('LRANGE', KEYS[2], from, from + tonumber(ARGV[3]) - 1)
table.insert(out, 1, marker)
return out
