-- Create a room.
-- KEYS[1] room hash
-- ARGV[1] createdAt (ms)  ARGV[2] deadline (ms)  ARGV[3] '1' for an
-- end-to-end room (its field e2e), '' otherwise
-- Returns 1, or 0 when the id is already taken.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'createdAt', ARGV[1], 'deadline', ARGV[2])
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'e2e', '1') end
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
