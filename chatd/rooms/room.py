"""One order's room on this instance: members, presence counts, typing state.

Plain values in, plain values out, no await: the clock is passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatd.rooms.events import RoomEvent
    from chatd.rooms.hub import Conn


class Member:
    """A connection's membership of a room.

    `seq` is the highest message seq delivered to it (later copies of older
    messages are dropped); while `pending` is a list, the join's replay is
    still being read and live events wait there.
    """

    __slots__ = ("sees_notes", "role", "seq", "pending")

    def __init__(self, sees_notes: bool, role: str = "") -> None:
        self.sees_notes = sees_notes
        self.role = role  # the connection's role on the order, as joined (a refresh finding another leaves)
        self.seq = 0
        self.pending: list[RoomEvent] | None = []


class Typist:
    """One user's typing state in a room: what the others were last told, and when."""

    __slots__ = ("shown", "deadline", "sent_at", "pending", "note")

    def __init__(self) -> None:
        self.shown = False  # the others were last told "active: true"
        self.deadline = 0.0  # shown until then without a refresh
        self.sent_at = float("-inf")  # the last event forwarded
        self.pending: bool | None = None  # a change waiting for the interval to end
        self.note = False  # an internal note is being written: only note readers are told


class Remote:
    """A typist on another instance, as shown here: the event that showed them,
    until when without a refresh, and the instance it came from."""

    __slots__ = ("event", "deadline", "origin")

    def __init__(self, event: RoomEvent, deadline: float) -> None:
        self.event = event
        self.deadline = deadline
        self.origin = event.origin


class Room:
    __slots__ = ("order", "seq", "members", "online", "typing", "held", "remote")

    def __init__(self, order: str) -> None:
        self.order = order
        self.seq = -1  # newest message seq delivered here; -1 until the first join read the store
        self.members: dict[Conn, Member] = {}  # connection -> Member
        self.online: dict[str, int] = {}  # user id -> joined connections here
        self.typing: dict[str, Typist] = {}  # user id -> typing state (monotonic s)
        self.held: list[RoomEvent] | None = None  # events waiting while a gap is read from the store
        self.remote: dict[str, Remote] = {}  # user id -> typing shown here for another instance

    def add(self, conn: Conn, user: str, member: Member) -> bool:
        """Add a membership; True if it is the user's first here."""
        self.members[conn] = member
        n = self.online.get(user, 0)
        self.online[user] = n + 1
        return n == 0

    def remove(self, conn: Conn, user: str) -> bool:
        """Drop a membership; True if it was the user's last here."""
        if self.members.pop(conn, None) is None:
            return False
        n = self.online.get(user, 1) - 1
        if n <= 0:
            self.online.pop(user, None)
            return True
        self.online[user] = n
        return False

    def typing_update(
        self, user: str, active: bool, now: float, ttl_s: float, interval_s: float, note: bool = False
    ) -> bool | None:
        """Record a typing frame: the state to forward now, or None. Forward it (and
        whatever `typing_due` hands out for the user) to note readers only while
        `typing_note(user)`.

        At most one event per user and interval whatever `active` says, so
        alternating frames cannot flood the room: a change inside the interval
        waits (the latest state wins) and `typing_due` hands it out at its end.
        A stop and a new start inside one interval still send the start: the
        others may have hidden the indicator meanwhile (a message does that).
        """
        t = self.typing.get(user)
        if t is None:
            if not active:
                return None
            t = self.typing[user] = Typist()
        if active:
            t.deadline = now + ttl_s
            t.note = note  # the others were told of the other kind first (`typing_switch`)
        if now - t.sent_at >= interval_s:
            if active or t.shown:  # a start, a refresh, or the stop of a shown indicator
                return self._sent(t, active, now)
            t.pending = None
            return None
        if t.pending is not None or active != t.shown:
            t.pending = active
        return None

    @staticmethod
    def _sent(t: Typist, active: bool, now: float) -> bool:
        t.shown, t.sent_at, t.pending = active, now, None
        return active

    def typing_due(self, now: float, interval_s: float) -> list[tuple[str, bool]]:
        """Events due now: waiting changes whose interval is over, and indicators
        that ran out without a refresh (`False`). Users with nothing shown or
        waiting are forgotten once their interval is over."""
        due = []
        for user, t in list(self.typing.items()):
            if t.pending is not None:
                if now - t.sent_at >= interval_s:
                    due.append((user, self._sent(t, t.pending, now)))
            elif t.shown and t.deadline <= now:
                due.append((user, self._sent(t, False, now)))
            elif not t.shown and now - t.sent_at >= interval_s:
                del self.typing[user]
        return due

    def typing_switch(self, user: str, note: bool, now: float) -> bool:
        """The user types the other kind (a note after text, or text after a note): if
        the others were shown the old kind, it stops now (True: forward `active: false`
        to the old kind's readers, `typing_note(user)`). The interval starts again, so
        switching back and forth still forwards at most one event per interval."""
        t = self.typing.get(user)
        if t is None or t.note == note or not t.shown:
            return False
        self._sent(t, False, now)
        return True

    def typing_note(self, user: str) -> bool:
        """Whether the user's typing is of a note (its events go to note readers only)."""
        t = self.typing.get(user)
        return t is not None and t.note

    def typing_clear(self, user: str) -> bool | None:
        """Forget a user's typing (they left): None if the others were not shown it,
        else whether it was a note (the stop goes to note readers only)."""
        t = self.typing.pop(user, None)
        return t.note if t is not None and t.shown else None

    def remote_typing(self, ev: RoomEvent, deadline: float) -> bool:
        """Another instance's typing event: whether to forward it to the members here.
        A start or refresh is forwarded and kept until `deadline`; a stop only if
        the typist is shown here (`remote_due` may have ended it already)."""
        user = ev.skip_user or ""
        if ev.typing:
            self.remote[user] = Remote(ev, deadline)
            return True
        return self.remote.pop(user, None) is not None

    def remote_due(self, now: float, departed: Callable[[str], bool]) -> list[RoomEvent]:
        """Other instances' typists to stop here: no refresh came by their deadline,
        or their instance left. The events that showed them, forgotten."""
        due = [u for u, r in self.remote.items() if r.deadline <= now or departed(r.origin)]
        return [self.remote.pop(u).event for u in due]

    def empty(self) -> bool:
        return not self.members
