-- List rooms whose deadline has passed, and how long until the next one.
-- KEYS[1] deadline set (one shard)
-- ARGV[1] how many at most
-- Returns {{id, deadline, id, deadline, ...}, wait}: the due rooms earliest
-- deadline first, and the milliseconds from now to the earliest deadline
-- still ahead (-1 if none). "Now" is Redis's own clock, the one its key
-- expiry runs on, so a replica whose clock runs ahead never ends a room
-- before Redis would, and a wait is the same on every replica's clock.
local t = redis.call('TIME')
local nowms = t[1] * 1000 + math.floor(t[2] / 1000)
local now = string.format('%.0f', nowms)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, ARGV[1])
local ahead = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
local wait = -1
if ahead[2] then
  wait = math.max(tonumber(ahead[2]) - nowms, 0)
end
return {due, wait}
