-- KEYS: registry, the user's conns hash, owned-conns set. ARGV: instance, user,
-- our count with the new connection, the limit. 1: admitted (and counted), 0: refused.
-- lib.lua is prepended (register).
local total = tonumber(ARGV[3])
local fields = redis.call('HGETALL', KEYS[2])
for i = 1, #fields, 2 do
  if fields[i] ~= ARGV[1] and redis.call('SISMEMBER', KEYS[1], fields[i]) == 1 then
    total = total + tonumber(fields[i + 1])
  end
end
if total > tonumber(ARGV[4]) then return 0 end
register(KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[2])
return 1
