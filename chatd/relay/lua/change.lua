-- KEYS: registry, owned set. ARGV: instance, member, online (1/0).
-- Returns how many other live instances hold the user in the room.
-- lib.lua is prepended (others, split, register).
local order, user = split(ARGV[2])
local pkey = 'chatd:presence:' .. order
local field = ARGV[1] .. '|' .. user
if ARGV[3] == '1' then
  register(KEYS[1], ARGV[1])
  redis.call('HSET', pkey, field, 1)
  redis.call('SADD', KEYS[2], ARGV[2])
else
  redis.call('HDEL', pkey, field)
  redis.call('SREM', KEYS[2], ARGV[2])
end
return others(pkey, ARGV[1], user, KEYS[1])
