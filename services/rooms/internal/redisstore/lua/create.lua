-- Create a room.
-- KEYS[1] room hash
-- ARGV[1] createdAt (ms)  ARGV[2] deadline (ms)
-- Returns 1, or 0 when the id is already taken.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'createdAt', ARGV[1], 'deadline', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
