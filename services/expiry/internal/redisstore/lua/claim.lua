-- Claim due rooms: take them out of the deadline set.
-- KEYS[1] deadline set
-- ARGV    room ids
-- Returns a flat list {id, deadline, id, deadline, ...} of the rooms this
-- call removed. ZREM answers 1 to exactly one caller, so of all expiry
-- replicas and the rooms service's destroy, one alone gets a given room.
-- The script touches only KEYS[1], so it stays valid on Redis Cluster.
local out = {}
for i = 1, #ARGV do
  local deadline = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if deadline and redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    out[#out + 1] = ARGV[i]
    out[#out + 1] = deadline
  end
end
return out
