-- Append a message as the room's next seq, expiring with the room; with a
-- clientId, at most once per member and clientId.
-- KEYS[1] room hash  KEYS[2] members hash  KEYS[3] messages list
-- KEYS[4] clients hash
-- ARGV[1] author's token hash
-- ARGV[2] the message's JSON object without its opening brace
-- ARGV[3] the most messages a room may hold
-- ARGV[4] the sender's clientId, '' for none
-- ARGV[5] '1' when the message is an envelope, '' when it is plain text
-- Returns {seq, marker} for a stored message; {seq, marker, entry} when this
-- member already sent this clientId: nothing was stored and entry is the
-- message stored then. Or an error reply GONE / UNAUTHORIZED / LIMIT, or
-- SEALED (plain text for an end-to-end room: refused, never a downgrade) /
-- PLAIN (an envelope for a room that is not end-to-end).
local deadline = redis.call('HGET', KEYS[1], 'deadline')
if not deadline then return redis.error_reply('GONE room gone') end
local marker = redis.call('HGET', KEYS[2], ARGV[1])
if not marker then return redis.error_reply('UNAUTHORIZED not a member') end
local e2e = redis.call('HGET', KEYS[1], 'e2e') == '1'
if e2e and ARGV[5] ~= '1' then return redis.error_reply('SEALED end-to-end room') end
if not e2e and ARGV[5] == '1' then return redis.error_reply('PLAIN room is not end-to-end') end
-- The marker is per member, so both members may use the same clientId.
local field = marker .. ':' .. ARGV[4]
if ARGV[4] ~= '' then
  local first = redis.call('HGET', KEYS[4], field)
  if first then
    -- Checked before the limit: a retry of a message that filled the room
    -- still gets it back. The entry cannot be missing (the list and this
    -- hash are deleted together and expire at the same deadline); were it
    -- missing, the send is stored again below.
    local entry = redis.call('LINDEX', KEYS[3], tonumber(first) - 1)
    if entry then return {tonumber(first), marker, entry} end
  end
end
local seq = redis.call('LLEN', KEYS[3]) + 1
if seq > tonumber(ARGV[3]) then return redis.error_reply('LIMIT room message limit reached') end
redis.call('RPUSH', KEYS[3], '{"seq":' .. seq .. ',"author":"' .. marker .. '",' .. ARGV[2])
-- The list and the clients hash end with the room: set on every append, in
-- the same script, so no write racing the deadline can leave either without
-- a TTL.
redis.call('PEXPIREAT', KEYS[3], deadline)
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[4], field, seq)
  redis.call('PEXPIREAT', KEYS[4], deadline)
end
return {seq, marker}
