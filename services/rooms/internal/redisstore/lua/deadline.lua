-- Record a room's deadline in its shard of the deadline set. (A script, not
-- a bare ZADD, so that it rides the store's pipelines with the others.)
-- KEYS[1] deadline set (the room's shard)
-- ARGV[1] deadline (ms)  ARGV[2] room id
return redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
