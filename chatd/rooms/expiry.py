"""When each connection's token expires, with one timer for all of them.

A timer handle per connection costs a few hundred bytes for as long as it
is open. Tokens expire on whole seconds (JWT `exp`), so connections share
groups: one per tenth of a second, a heap of the groups' times and one timer
for the earliest. A group is never due before its members' `exp` (rounded
up to the tenth); a connection that goes away or refreshes its token leaves
its group.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatd.rooms.hub import Conn

TENTHS = 10  # groups per second


class Group(set["Conn"]):
    """The connections whose tokens expire in the same tenth of a second."""

    __slots__ = ("key",)

    def __init__(self, key: int) -> None:
        super().__init__()
        self.key = key  # tenths of a second of the wall clock


class Expiries:
    def __init__(self, expired: Callable[[Conn], None], wall_clock: Callable[[], float]) -> None:
        self._expired = expired  # called once per connection, at its token's `exp`
        self._wall_clock = wall_clock
        self._groups: dict[int, Group] = {}
        self._due: list[int] = []  # heap of group keys, each once (one may be stale: its group emptied)
        self._queued: set[int] = set()  # the keys in `_due`
        self._timer: asyncio.TimerHandle | None = None
        self._timer_key: int | None = None

    def arm(self, conn: Conn) -> None:
        """Expire `conn` at its token's `exp`, instead of any earlier arming."""
        self.disarm(conn)
        key = math.ceil(conn.ident.exp * TENTHS)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(key)
            if key not in self._queued:  # a refresh to the same `exp` empties and makes its group again
                self._queued.add(key)
                heapq.heappush(self._due, key)
            if self._timer_key is None or key < self._timer_key:
                self._schedule()
        group.add(conn)
        conn.expiry = group

    def disarm(self, conn: Conn) -> None:
        group = conn.expiry
        if group is not None:
            conn.expiry = None
            group.discard(conn)
            if not group and self._groups.get(group.key) is group:
                del self._groups[group.key]

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_key = None
        if self._due:
            key = self._timer_key = self._due[0]
            delay = max(0.0, key / TENTHS - self._wall_clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        """The earliest group is due (by the loop's clock, as a timer per connection would
        be), and any other the wall clock has passed."""
        self._timer = self._timer_key = None
        now = self._wall_clock() * TENTHS
        first = True
        while self._due and (first or self._due[0] <= now):
            first = False
            key = heapq.heappop(self._due)
            self._queued.discard(key)
            group = self._groups.pop(key, None)
            for conn in list(group or ()):
                conn.expiry = None
                self._expired(conn)
        self._schedule()
