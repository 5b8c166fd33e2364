"""Who is online in a room across instances, kept in Redis so that neither a
crashed instance nor a restarted Redis leaves anyone online (or offline) for good.

Each instance records its own holdings, not a shared count: a room's hash
`chatd:presence:{order}` has one field `{instance}|{user}` per instance where
that user has a connection in the room, and `chatd:owned:{instance}` lists
what the instance holds. Instances are registered in `chatd:instances` and
keep `chatd:alive:{instance}` fresh (it expires `ALIVE_MS` after the last
heartbeat; every script that registers an instance sets it too, so none is
registered and not alive). A user is online in a room while a registered instance holds
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

The Lua scripts (chatd/relay/lua/, package data) build the room keys they
touch from their arguments (fine on one Redis server; a Redis Cluster would
need hash tags).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.resources import files

REGISTRY = "chatd:instances"
ALIVE_MS = 5000


def _script(name: str, lib: bool = False) -> str:
    """A Lua script shipped beside this module (chatd/relay/lua/), with the
    shared helpers in front if it uses them."""
    folder = files(__package__) / "lua"
    text = (folder / f"{name}.lua").read_text()
    return f"local ALIVE_MS = {ALIVE_MS}\n" + (folder / "lib.lua").read_text() + text if lib else text


CHANGE = _script("change", lib=True)  # a first (last) local connection; do others hold the user?
REAP = _script("reap", lib=True)  # a dead instance's holdings and counts go
SYNC = _script("sync", lib=True)  # Redis holds exactly what this instance holds
ADMIT = _script("admit", lib=True)  # one more connection within the limit, over live instances
SET_CONNS = _script("set_conns")  # this instance's connection counts, as its truth


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
    return raw[: int(n)].decode(), raw[int(n) :].decode()


def holders(fields: Iterable[bytes | str], registered: Iterable[bytes | str]) -> set[str]:
    """Users of a room's presence fields held by a registered instance."""
    live = {r.decode() if isinstance(r, bytes) else r for r in registered}
    users: set[str] = set()
    for f in fields:
        inst, _, user = (f.decode() if isinstance(f, bytes) else f).partition("|")
        if inst in live:
            users.add(user)
    return users
