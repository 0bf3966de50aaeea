-- Delete every key of a room on a member's request.
-- KEYS[1] room hash  KEYS[2] members hash  KEYS[3] messages list
-- ARGV[1] token hash
-- Returns 1 when deleted, 0 when the caller is not a member of a live room.
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
