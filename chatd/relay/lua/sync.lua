-- KEYS: registry, owned set. ARGV: instance, then every member it holds now.
-- Returns {members it turned online, members it turned offline}.
-- lib.lua is prepended (others, split, register).
register(KEYS[1], ARGV[1])
local want = {}
for i = 2, #ARGV do want[ARGV[i]] = true end
local on, off = {}, {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if want[m] then
    want[m] = nil
  else
    local order, user = split(m)
    local pkey = 'chatd:presence:' .. order
    redis.call('HDEL', pkey, ARGV[1] .. '|' .. user)
    redis.call('SREM', KEYS[2], m)
    if others(pkey, ARGV[1], user, KEYS[1]) == 0 then table.insert(off, m) end
  end
end
for m, _ in pairs(want) do
  local order, user = split(m)
  local pkey = 'chatd:presence:' .. order
  redis.call('HSET', pkey, ARGV[1] .. '|' .. user, 1)
  redis.call('SADD', KEYS[2], m)
  if others(pkey, ARGV[1], user, KEYS[1]) == 0 then table.insert(on, m) end
end
return {on, off}
