"""Who is online in a room across instances, kept in Redis so that neither a
crashed instance nor a restarted Redis leaves anyone online (or offline) for good.

Each instance records its own holdings, not a shared count: a room's hash
`chatd:presence:{order}` has one field `{instance}|{user}` per instance where
that user has a connection in the room, and `chatd:owned:{instance}` lists
what the instance holds. Instances are registered in `chatd:instances` and
keep `chatd:alive:{instance}` fresh (it expires `ALIVE_MS` after the last
heartbeat). A user is online in a room while a registered instance holds
them there. Then:

* a crashed instance stops its heartbeat; the first instance to see its
  `alive` key gone takes it out of the registry (once: SREM answers 1 only
  to one of them), drops its fields, and announces offline whoever is now
  held by nobody;
* after Redis lost everything (or an instance was taken for dead while cut
  off), `sync` puts back what the instance really holds, and says who that
  turned online or offline;
* a change (first or last local connection) and the question "does anyone
  else still hold this user here?" are one Lua script: atomic, so of two
  instances a user joins at once exactly one announces them.

Connections per user (the contract's limit holds across instances) are kept
the same way: `chatd:conns:{user}` has one field per instance with its count,
always written as the instance's own truth (so a late write can never leave
a stale count), and `chatd:owned-conns:{instance}` lists the users for reaping.

Scripts build the room keys they touch from their arguments (fine on one
Redis server; a Redis Cluster would need hash tags).
"""

from __future__ import annotations

REGISTRY = "chatd:instances"
ALIVE_MS = 5000

_LIB = """
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
"""

# KEYS: registry, owned set. ARGV: instance, member, online (1/0).
# Returns how many other live instances hold the user in the room.
CHANGE = _LIB + """
local order, user = split(ARGV[2])
local pkey = 'chatd:presence:' .. order
local field = ARGV[1] .. '|' .. user
if ARGV[3] == '1' then
  redis.call('SADD', KEYS[1], ARGV[1])
  redis.call('HSET', pkey, field, 1)
  redis.call('SADD', KEYS[2], ARGV[2])
else
  redis.call('HDEL', pkey, field)
  redis.call('SREM', KEYS[2], ARGV[2])
end
return others(pkey, ARGV[1], user, KEYS[1])
"""

# KEYS: registry, the dead instance's owned set, its owned-conns set. ARGV: the dead instance.
# Returns the members now held by nobody (empty if another instance reaped it).
REAP = _LIB + """
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
"""

# KEYS: registry, owned set. ARGV: instance, then every member it holds now.
# Returns {members it turned online, members it turned offline}.
SYNC = _LIB + """
redis.call('SADD', KEYS[1], ARGV[1])
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
"""


# KEYS: registry, the user's conns hash, owned-conns set. ARGV: instance, user,
# our count with the new connection, the limit. 1: admitted (and counted), 0: refused.
ADMIT = """
local total = tonumber(ARGV[3])
local fields = redis.call('HGETALL', KEYS[2])
for i = 1, #fields, 2 do
  if fields[i] ~= ARGV[1] and redis.call('SISMEMBER', KEYS[1], fields[i]) == 1 then
    total = total + tonumber(fields[i + 1])
  end
end
if total > tonumber(ARGV[4]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[2])
return 1
"""

# KEYS: owned-conns set. ARGV: instance, then user, count pairs: our counts now
# (one user after a close; all of them after a reconnect, when `all` = ARGV[2] is 1).
SET_CONNS = """
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
"""


def conns_key(user: str) -> str:
    return f"chatd:conns:{user}"


def owned_conns_key(instance: str) -> str:
    return f"chatd:owned-conns:{instance}"


def presence_key(order: str) -> str:
    return f"chatd:presence:{order}"


def owned_key(instance: str) -> str:
    return f"chatd:owned:{instance}"


def alive_key(instance: str) -> str:
    return f"chatd:alive:{instance}"


def member(order: str, user: str) -> str:
    """`order` and `user` in one string the scripts can split (any characters)."""
    return f"{len(order.encode())}:{order}{user}"


def split(m: bytes | str) -> tuple[str, str]:
    s = m.decode() if isinstance(m, bytes) else m
    n, _, rest = s.partition(":")
    raw = rest.encode()
    return raw[: int(n)].decode(), raw[int(n):].decode()


def holders(fields, registered) -> set[str]:
    """Users of a room's presence fields held by a registered instance."""
    live = {r.decode() if isinstance(r, bytes) else r for r in registered}
    users = set()
    for f in fields:
        inst, _, user = (f.decode() if isinstance(f, bytes) else f).partition("|")
        if inst in live:
            users.add(user)
    return users
