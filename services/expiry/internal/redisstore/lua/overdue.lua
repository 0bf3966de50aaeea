-- Take over claimed ends whose announcer's lease ran out (it died, or could
-- not reach NATS): lease them anew to this caller.
-- KEYS[1] ending set
-- ARGV[1] lease (ms)  ARGV[2] how many at most
-- Returns the members taken ("<reason>:<id>"), oldest lease first. One
-- script, so of all replicas one alone takes a given entry per lease.
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now), 'LIMIT', 0, ARGV[2])
local leased = string.format('%.0f', now + tonumber(ARGV[1]))
for _, m in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', leased, m)
end
return due
