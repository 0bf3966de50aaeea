-- Count one request in a client's fixed window.
-- KEYS[1] the bucket (route group and client address)
-- ARGV[1] the window (ms)
-- Returns {requests in this window, ms until it ends}. A bucket left
-- without a TTL (it cannot happen through this script) is given one.
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
