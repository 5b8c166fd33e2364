-- Helpers prepended to the scripts that need them (see redis_presence.py).
-- others: how many other registered instances hold `user` in the room hash `pkey`.
-- split: a member (redis_presence.member) back into order and user.
-- register: put `inst` in the registry `reg`, alive for ALIVE_MS (set in front of
-- this file from redis_presence.ALIVE_MS): an instance is never registered without
-- its alive key, or another instance that looks before its first heartbeat would
-- take it for dead and drop its holdings and counts.
local function register(reg, inst)
  redis.call('SADD', reg, inst)
  redis.call('SET', 'chatd:alive:' .. inst, 1, 'PX', ALIVE_MS)
end
local function others(pkey, inst, user, reg)
  local n = 0
  for _, f in ipairs(redis.call('HKEYS', pkey)) do
    local sep = string.find(f, '|', 1, true)
    if sep and string.sub(f, sep + 1) == user then
      local i = string.sub(f, 1, sep - 1)
      if i ~= inst and redis.call('SISMEMBER', reg, i) == 1 then n = n + 1 end
    end
  end
  return n
end
local function split(m)
  local c = string.find(m, ':', 1, true)
  local n = tonumber(string.sub(m, 1, c - 1))
  return string.sub(m, c + 1, c + n), string.sub(m, c + n + 1)
end
