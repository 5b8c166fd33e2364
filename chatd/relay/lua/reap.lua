-- KEYS: registry, the dead instance's owned set, its owned-conns set. ARGV: the dead instance.
-- Returns the members now held by nobody (empty if another instance reaped it).
-- lib.lua is prepended (others, split).
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return {} end
for _, u in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  redis.call('HDEL', 'chatd:conns:' .. u, ARGV[1])
end
redis.call('DEL', KEYS[3])
local gone = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local order, user = split(m)
  local pkey = 'chatd:presence:' .. order
  redis.call('HDEL', pkey, ARGV[1] .. '|' .. user)
  if others(pkey, ARGV[1], user, KEYS[1]) == 0 then table.insert(gone, m) end
end
redis.call('DEL', KEYS[2])
return gone
