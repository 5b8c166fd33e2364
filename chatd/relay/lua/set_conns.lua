-- KEYS: owned-conns set. ARGV: instance, then user, count pairs: our counts now
-- (one user after a close; all of them after a reconnect, when `all` = ARGV[2] is 1).
local want = {}
for i = 3, #ARGV, 2 do want[ARGV[i]] = tonumber(ARGV[i + 1]) end
if ARGV[2] == '1' then
  for _, u in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    if want[u] == nil then want[u] = 0 end
  end
end
for u, n in pairs(want) do
  if n > 0 then
    redis.call('HSET', 'chatd:conns:' .. u, ARGV[1], n)
    redis.call('SADD', KEYS[1], u)
  else
    redis.call('HDEL', 'chatd:conns:' .. u, ARGV[1])
    redis.call('SREM', KEYS[1], u)
  end
end
return 1
