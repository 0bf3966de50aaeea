-- Append a message as the room's next seq, expiring with the room.
-- KEYS[1] room hash  KEYS[2] members hash  KEYS[3] messages list
-- ARGV[1] author's token hash
-- ARGV[2] the message's JSON object without its opening brace
-- ARGV[3] the most messages a room may hold
-- Returns {seq, marker}, or an error reply GONE / UNAUTHORIZED / LIMIT.
local deadline = redis.call('HGET', KEYS[1], 'deadline')
if not deadline then return redis.error_reply('GONE room gone') end
local marker = redis.call('HGET', KEYS[2], ARGV[1])
if not marker then return redis.error_reply('UNAUTHORIZED not a member') end
local seq = redis.call('LLEN', KEYS[3]) + 1
if seq > tonumber(ARGV[3]) then return redis.error_reply('LIMIT room message limit reached') end
redis.call('RPUSH', KEYS[3], '{"seq":' .. seq .. ',"author":"' .. marker .. '",' .. ARGV[2])
-- The list ends with the room: set on every append, in the same script, so
-- no write racing the deadline can leave it without a TTL.
redis.call('PEXPIREAT', KEYS[3], deadline)
return {seq, marker}
