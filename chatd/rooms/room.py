"""One order's room on this instance: members, presence counts, typing state.

Plain values in, plain values out, no await: the clock is passed in.
"""

from __future__ import annotations


class Member:
    """A connection's membership of a room.

    `seq` is the highest message seq delivered to it (later copies of older
    messages are dropped); while `pending` is a list, the join's replay is
    still being read and live events wait there.
    """

    __slots__ = ("sees_notes", "seq", "pending")

    def __init__(self, sees_notes: bool) -> None:
        self.sees_notes = sees_notes
        self.seq = 0
        self.pending: list | None = []


class Room:
    __slots__ = ("order", "seq", "members", "online", "typing", "typing_sent")

    def __init__(self, order: str) -> None:
        self.order = order
        self.seq = -1  # newest message seq delivered here; -1 until the first join read the store
        self.members: dict = {}  # connection -> Member
        self.online: dict[str, int] = {}  # user id -> joined connections here
        self.typing: dict[str, float] = {}  # user id -> deadline (monotonic s)
        self.typing_sent: dict[str, float] = {}  # user id -> last forwarded "active"

    def add(self, conn, user: str, member: Member) -> bool:
        """Add a membership; True if it is the user's first here."""
        self.members[conn] = member
        n = self.online.get(user, 0)
        self.online[user] = n + 1
        return n == 0

    def remove(self, conn, user: str) -> bool:
        """Drop a membership; True if it was the user's last here."""
        if self.members.pop(conn, None) is None:
            return False
        n = self.online.get(user, 1) - 1
        if n <= 0:
            self.online.pop(user, None)
            return True
        self.online[user] = n
        return False

    def typing_update(self, user: str, active: bool, now: float, ttl_s: float, min_interval_s: float) -> bool:
        """Record a typing frame; True if it should be forwarded to the room."""
        if not active:
            was = self.typing.pop(user, None) is not None
            self.typing_sent.pop(user, None)
            return was
        self.typing[user] = now + ttl_s
        last = self.typing_sent.get(user)
        if last is not None and now - last < min_interval_s:
            return False
        self.typing_sent[user] = now
        return True

    def typing_expired(self, now: float) -> list[str]:
        """Users whose indicator ran out without a refresh (and are now cleared)."""
        gone = [u for u, deadline in self.typing.items() if deadline <= now]
        for u in gone:
            del self.typing[u]
            self.typing_sent.pop(u, None)
        return gone

    def empty(self) -> bool:
        return not self.members
