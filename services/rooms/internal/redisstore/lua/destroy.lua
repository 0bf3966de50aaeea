-- Delete every key of a room on a member's request.
-- KEYS[1] room hash  KEYS[2] members hash  KEYS[3..] the room's other keys
-- (contract.RoomKeys: messages list, clients hash, …)
-- ARGV[1] token hash
-- Returns 1 when deleted, 0 when the caller is not a member of a live room.
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('DEL', unpack(KEYS))
return 1
