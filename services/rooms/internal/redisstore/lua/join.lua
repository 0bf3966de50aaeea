-- Admit a member, atomically, so concurrent joins never exceed capacity.
-- KEYS[1] room hash  KEYS[2] members hash
-- ARGV[1] hash of the token the caller presented ('' for none)
-- ARGV[2] hash of a freshly minted token  ARGV[3] its marker  ARGV[4] capacity
-- Returns {status, deadline}: status 'member' (already in, no new
-- slot), 'joined' (new slot taken), 'full', or 'notfound'.
local deadline = redis.call('HGET', KEYS[1], 'deadline')
if not deadline then return {'notfound', 0} end
if ARGV[1] ~= '' and redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
  return {'member', deadline}
end
if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[4]) then return {'full', deadline} end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('PEXPIREAT', KEYS[2], deadline)
return {'joined', deadline}
