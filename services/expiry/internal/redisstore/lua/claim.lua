-- Claim due rooms: move each from the deadline set into the ending set (the
-- outbox of ends to announce), leased to this caller.
-- KEYS[1] deadline set  KEYS[2] ending set (same hash tag)
-- ARGV[1] lease (ms)  ARGV[2] member prefix ("expired:")  ARGV[3..] room ids
-- Returns a flat list {id, deadline, id, deadline, ...} of the rooms this
-- call moved. ZREM answers 1 to exactly one caller, so of all expiry
-- replicas and the rooms service's destroy, one alone gets a given room;
-- should it die before announcing, the lease (scored by Redis's clock)
-- runs out and the overdue script hands the end to another replica.
local t = redis.call('TIME')
local leased = string.format('%.0f', t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[1]))
local out = {}
for i = 3, #ARGV do
  local deadline = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if deadline and redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('ZADD', KEYS[2], leased, ARGV[2] .. ARGV[i])
    out[#out + 1] = ARGV[i]
    out[#out + 1] = deadline
  end
end
return out
