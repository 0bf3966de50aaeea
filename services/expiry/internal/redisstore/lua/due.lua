-- List rooms whose deadline has passed.
-- KEYS[1] deadline set
-- ARGV[1] how many at most
-- Returns room ids, earliest deadline first. "Now" is Redis's own clock,
-- the one its key expiry runs on, so a replica whose clock runs ahead never
-- ends a room before Redis would.
local t = redis.call('TIME')
local now = string.format('%.0f', t[1] * 1000 + math.floor(t[2] / 1000))
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])
