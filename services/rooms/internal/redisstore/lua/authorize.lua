-- Check membership of a live room.
-- KEYS[1] room hash  KEYS[2] members hash
-- ARGV[1] token hash
-- Returns {deadline, pttl} for a member, nil otherwise (unknown token, or the
-- room is gone: its members hash expires with it).
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return nil end
local deadline = redis.call('HGET', KEYS[1], 'deadline')
if not deadline then return nil end
return {deadline, redis.call('PTTL', KEYS[1])}
