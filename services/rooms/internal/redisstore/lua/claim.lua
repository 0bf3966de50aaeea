-- Claim a destroyed room's end: move the room from the deadline set into
-- the ending set (the outbox of ends to announce), leased to this caller.
-- KEYS[1] deadline set  KEYS[2] ending set (same hash tag)
-- ARGV[1] room id  ARGV[2] its ending member ("destroyed:<id>")  ARGV[3] lease (ms)
-- Returns 1 to the one caller (of this service and the expiry service) that
-- moved the room, 0 to the others. Should the winner die before announcing,
-- its lease (scored by Redis's clock) runs out and an expiry replica
-- announces the end.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], string.format('%.0f', t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[3])), ARGV[2])
return 1
