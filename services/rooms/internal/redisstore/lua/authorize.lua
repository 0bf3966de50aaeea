-- Check membership of a live room.
-- KEYS[1] room hash  KEYS[2] members hash  KEYS[3] messages list
-- ARGV[1] token hash
-- Returns {deadline, pttl, marker, last seq, e2e} for a member (marker: its
-- public one, as on its messages; last seq: the newest message's, entry i
-- having seq i+1; e2e: '1' for an end-to-end room, '' otherwise), nil otherwise (unknown token, or the room is gone: its
-- members hash expires with it).
local marker = redis.call('HGET', KEYS[2], ARGV[1])
if not marker then return nil end
local deadline = redis.call('HGET', KEYS[1], 'deadline')
if not deadline then return nil end
local e2e = redis.call('HGET', KEYS[1], 'e2e') or ''
return {deadline, redis.call('PTTL', KEYS[1]), marker, redis.call('LLEN', KEYS[3]), e2e}
