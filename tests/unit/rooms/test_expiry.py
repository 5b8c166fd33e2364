"""Token expiries share one timer (chatd.rooms.expiry): never early, each connection once,
and a connection that leaves or refreshes is not expired at its old `exp`."""

from __future__ import annotations

import asyncio
import time

from chatd.auth.tokens import Identity
from chatd.rooms.expiry import Expiries
from chatd.rooms.hub import Conn


def conn(user: str, exp: float) -> Conn:
    return Conn(Identity(user, user, "buyer", frozenset(), exp), None, lambda *a: None)


async def test_each_expires_once_not_before_its_exp_and_groups_share_a_timer():
    fired: list[tuple[str, float]] = []
    exp = Expiries(lambda c: fired.append((c.user, time.time())), time.time)
    now = time.time()
    a, b, c = conn("a", now + 0.15), conn("b", now + 0.15), conn("c", now + 0.05)
    for x in (a, b, c):
        exp.arm(x)
    assert a.expiry is b.expiry and len(exp._groups) == 2
    await asyncio.sleep(0.4)
    assert sorted(u for u, _ in fired) == ["a", "b", "c"]
    for user, at in fired:
        assert at >= {"a": a, "b": b, "c": c}[user].ident.exp - 0.01
    assert [u for u, _ in fired][0] == "c"
    assert exp._groups == {} and a.expiry is None


async def test_disarm_and_rearm():
    fired: list[str] = []
    exp = Expiries(lambda c: fired.append(c.user), time.time)
    now = time.time()
    gone, refreshed = conn("gone", now + 0.05), conn("refreshed", now + 0.05)
    exp.arm(gone)
    exp.arm(refreshed)
    exp.disarm(gone)
    refreshed.ident = Identity("refreshed", "refreshed", "buyer", frozenset(), now + 0.25)
    exp.arm(refreshed)
    await asyncio.sleep(0.15)
    assert fired == []
    await asyncio.sleep(0.25)
    assert fired == ["refreshed"]


async def test_refreshing_to_the_same_exp_keeps_one_entry():
    """A client may send the same `auth` again and again (it is not rate-limited): each
    refresh empties the group and makes it again; the heap must not grow with them."""
    fired: list[str] = []
    exp = Expiries(lambda c: fired.append(c.user), time.time)
    a = conn("a", time.time() + 3600)
    for _ in range(1000):
        exp.arm(a)
    assert len(exp._groups) == 1 and exp._due == [next(iter(exp._groups))]
    b = conn("b", time.time() + 0.05)  # an earlier one still fires, and the heap empties as keys fire
    exp.arm(b)
    exp.disarm(a)
    await asyncio.sleep(0.2)
    assert fired == ["b"] and exp._groups == {}
