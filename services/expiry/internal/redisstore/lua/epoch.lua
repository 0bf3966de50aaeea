-- Notice that Redis lost its data: the epoch sentinel, which has no TTL,
-- is missing. The caller that finds it missing writes a new one and, in
-- the same step, puts a resync in the ending set, leased to itself, so the
-- resync is announced even if this caller dies next.
-- KEYS[1] epoch  KEYS[2] ending set (same hash tag)
-- ARGV[1] new epoch  ARGV[2] its resync member ("resync:<epoch>")  ARGV[3] lease (ms)
-- Returns 1 when this call found the epoch missing, 0 otherwise.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TIME')
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], string.format('%.0f', t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[3])), ARGV[2])
return 1
