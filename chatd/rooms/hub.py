"""Local connections per room and per user, and the bounded outbound path.

Fan-out never awaits: a frame is encoded once, the same bytes are appended to
each recipient's outbound list, and one callback per loop iteration writes
each dirty connection's frames to its transport in a single write. A socket
whose kernel and transport buffers are full keeps frames here; past
`outbound_queue_frames`, or past `outbound_queue_bytes` when a write finds
the socket still full, that connection is closed with 1013 and the room
goes on without it (see websockets' broadcast topic for why). Bytes count,
not only frames: one history page can be a megabyte. The bytes are checked
at each write attempt, so one answer (a long replay) may exceed them once
while the client keeps up; what a stalled client asks for next cannot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import msgspec

from chatd.auth import permissions
from chatd.auth.tokens import Identity
from chatd.errors import CloseCode, Unavailable
from chatd.rooms.events import RoomEvent, StaffEvent, UserEvent
from chatd.rooms.frames import payload
from chatd.rooms.room import Member, Room
from chatd.wire import Unread, encode_frame

if TYPE_CHECKING:
    from chatd.rooms.expiry import Group

log = logging.getLogger("chatd.hub")

IdleCallback = Callable[[str, bool], None]  # (key, on)
GapReader = Callable[[str, int, int], Awaitable[list[RoomEvent]]]  # (order, after, before)
TotalReader = Callable[[Identity], Awaitable[int]]
CaughtUp = Callable[[str, list[RoomEvent]], None]  # (order, the message events delivered from the store)


class Conn:
    """One WebSocket connection as the hub sees it. Few objects, all slots."""

    __slots__ = (
        "ident",
        "transport",
        "closer",
        "rooms",
        "inbox",
        "out",
        "out_bytes",
        "closed",
        "posting",
        "reading",
        "strikes",
        "expiry",
        "__weakref__",
    )

    def __init__(self, ident: Identity, transport: asyncio.Transport | None, closer: Callable[..., None]) -> None:
        self.ident = ident
        self.transport = transport
        self.closer = closer  # closes the socket with a code (and a reason), asynchronously
        self.rooms: dict[str, Member] = {}
        self.inbox = False
        self.out: list[bytes] | None = None
        self.out_bytes = 0  # the size of `out`
        self.closed = False
        self.posting: Bucket | None = None  # send/set_status/dispute; the edge makes it at first use
        self.reading: Bucket | None = None  # history/inbox/join
        self.strikes = 0  # rate_limited answers in a row
        self.expiry: Group | None = None  # its token's due group (chatd.rooms.expiry)

    @property
    def user(self) -> str:
        return self.ident.id


class Bucket:
    """A token bucket: `burst` requests at once, `rate_per_s` sustained."""

    __slots__ = ("rate_per_s", "burst", "tokens", "stamp")

    def __init__(self, rate_per_s: float, burst: int, now: float = 0.0) -> None:
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate_per_s)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class Hub:
    """Who is here, and delivery to them: what chat.Chat, the `relay.base.Handler`, delivers through."""

    def __init__(
        self,
        queue_frames: int,
        buffer_bytes: int,
        on_room_idle: IdleCallback | None = None,
        on_user_idle: IdleCallback | None = None,
        gap_reader: GapReader | None = None,
        queue_bytes: int = 8 << 20,
        total_reader: TotalReader | None = None,
        on_staff_idle: Callable[[bool], None] | None = None,
    ) -> None:
        self.queue_frames = queue_frames
        self.queue_bytes = queue_bytes
        self.buffer_bytes = buffer_bytes
        self.rooms: dict[str, Room] = {}
        self.users: dict[str, set[Conn]] = {}
        self.staff: set[Conn] = set()  # connections of staff tokens: the attention queue's audience
        self._dirty: list[Conn] = []
        self._held: list[Conn] = []
        self._scheduled = False
        self._held_timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_event_loop()
        self.slow_closes = 0
        self.messages_out = 0  # message frames handed to connections (read by /metrics)
        # called with (key, on) when the first / last local interest appears
        self.on_room_idle: IdleCallback = on_room_idle or (lambda order, on: None)
        self.on_user_idle: IdleCallback = on_user_idle or (lambda user, on: None)
        self.on_staff_idle: Callable[[bool], None] = on_staff_idle or (lambda on: None)
        # async (order, after, before) -> RoomEvents of the stored messages in between
        self.gap_reader = gap_reader or _no_gap
        # async identity -> the user's unread total over the orders that identity may see
        self.total_reader = total_reader or _no_total
        self._tasks: set[asyncio.Task[None]] = set()  # gap fills and re-totalled unreads in flight
        self._totalling: dict[Conn, list[tuple[bytes, bytes]]] = {}  # (unread, notify) waiting for a total
        # a catch-up delivered messages pub/sub never brought: their unread and notify were lost too
        self.on_caught_up: CaughtUp = lambda order, missed: None

    # --- connections -----------------------------------------------------

    def count(self, user: str) -> int:
        return len(self.users.get(user, ()))

    def add_conn(self, conn: Conn) -> None:
        conns = self.users.get(conn.user)
        if conns is None:
            conns = self.users[conn.user] = set()
            self.on_user_idle(conn.user, True)
        conns.add(conn)
        if conn.ident.role == permissions.QUEUE_ROLE:  # a refresh keeps the role: staff for good
            self.staff.add(conn)
            if len(self.staff) == 1:
                self.on_staff_idle(True)

    def remove_conn(self, conn: Conn) -> list[str]:
        """Forget a connection; return the orders where its user is now offline."""
        conn.closed = True
        conn.out = None
        offline = [order for order in list(conn.rooms) if self.leave(conn, order)]
        conns = self.users.get(conn.user)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.users[conn.user]
                self.on_user_idle(conn.user, False)
        if conn in self.staff:
            self.staff.discard(conn)
            if not self.staff:
                self.on_staff_idle(False)
        return offline

    def join(self, conn: Conn, order: str, sees_notes: bool, role: str = "") -> tuple[Member, bool]:
        """Subscribe before reading the store: live events wait in `pending`.

        Returns the membership and whether the user is now newly online here.
        A repeated join replaces the old membership.
        """
        room = self.rooms.get(order)
        if room is None:
            room = self.rooms[order] = Room(order)
            self.on_room_idle(order, True)
        rejoin = order in conn.rooms
        if rejoin:
            room.remove(conn, conn.user)
        member = Member(sees_notes, role)
        conn.rooms[order] = member
        first = room.add(conn, conn.user, member)
        return member, first and not rejoin  # a rejoin was online all along

    def release(self, conn: Conn, order: str, member: Member, replayed_to: int) -> None:
        """The replay up to `replayed_to` was queued: deliver what waited, newer only.

        A room new on this instance starts counting at `replayed_to`; an older
        one keeps its count, so members joined before still get every message."""
        room = self.rooms.get(order)
        if room is not None and room.seq < 0:
            room.seq = replayed_to
        member.seq = max(member.seq, replayed_to)
        pending, member.pending = member.pending, None
        for ev in pending or ():
            self._deliver_one(conn, member, ev)

    def leave(self, conn: Conn, order: str) -> bool:
        """End a membership; True if the user has no connection left in the room."""
        member = conn.rooms.pop(order, None)
        room = self.rooms.get(order)
        if member is None or room is None:
            return False
        last = room.remove(conn, conn.user)
        if room.empty():
            del self.rooms[order]
            self.on_room_idle(order, False)
        return last

    def online(self, order: str) -> frozenset[str]:
        room = self.rooms.get(order)
        return frozenset(room.online) if room else frozenset()

    # --- delivery (relay.base.Handler) -------------------------------------

    def deliver_room(self, ev: RoomEvent) -> None:
        room = self.rooms.get(ev.order)
        if room is None:
            return
        if room.held is not None:  # a gap is being filled from the store: after it, in order
            room.held.append(ev)
            return
        if ev.seq:
            # Messages reach a room here in seq order, exactly once: older copies
            # are dropped, and a gap (lost or not yet relayed) is filled from the
            # store first. Several instances commit to one store, so a local
            # publish can overtake a remote one. Fan-out never waits for the
            # store: the room holds this and later events while a task reads
            # the gap, then releases them in order (`_fill`).
            if ev.seq <= room.seq:
                return
            if room.seq >= 0 and ev.seq > room.seq + 1:
                room.held = [ev]
                self._spawn(self._fill(room, room.seq, ev.seq))
                return
            room.seq = ev.seq
        self._deliver_all(room, ev)

    def catch_up(self, order: str, last_seq: int) -> None:
        """The store's newest seq for a room is `last_seq`: deliver what is missing."""
        room = self.rooms.get(order)
        if room is not None and room.held is None and 0 <= room.seq < last_seq:
            room.held = []
            self._spawn(self._fill(room, room.seq, last_seq + 1, self.on_caught_up))

    async def _fill(self, room: Room, after: int, before: int, then: CaughtUp | None = None) -> None:
        """Read the stored messages after < seq < before, deliver them, then what
        the room held meanwhile (which may reveal the next gap). `then` gets the
        messages delivered from the store (none: pub/sub brought them meanwhile)."""
        try:
            missed = await self.gap_reader(room.order, after, before)
        except Unavailable as exc:  # the database is away (said in /healthz): no traceback
            log.warning("gap fill of %s failed: %s", room.order, exc.message)
            missed = None
        except Exception:  # noqa: BLE001 - the store failed: go on with the gap (clients resume with since)
            log.exception("gap fill of %s failed", room.order)
            missed = None
        delivered = []
        for ev in missed or ():
            if ev.seq > room.seq:
                self._deliver_all(room, ev)
                delivered.append(ev)
        held, room.held = room.held or [], None
        if self.rooms.get(room.order) is not room:
            return  # everyone left meanwhile (a new room starts from its own join)
        if then is not None and delivered:
            then(room.order, delivered)
        for i, ev in enumerate(held):
            if missed is None and ev.seq > room.seq:
                room.seq = ev.seq - 1  # skip the gap that could not be read
            self.deliver_room(ev)
            if room.held is not None:  # another gap: the rest waits behind it
                # reachable: deliver_room may hold again; mypy keeps room.held narrowed to None from above
                room.held.extend(held[i + 1 :])  # type: ignore[unreachable]
                return

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Cancel gap fills in flight (shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _deliver_all(self, room: Room, ev: RoomEvent) -> None:
        if ev.seq and ev.seq > room.seq:  # an event without a seq (presence, typing) counts nothing
            room.seq = ev.seq
        for conn, member in room.members.items():
            self._deliver_one(conn, member, ev)

    def _deliver_one(self, conn: Conn, member: Member, ev: RoomEvent) -> None:
        if (ev.notes and not member.sees_notes) or (ev.plain and member.sees_notes):
            return
        if ev.skip_user is not None and ev.skip_user == conn.ident.id:
            return
        if ev.role and ev.role != member.role:
            return
        if member.pending is not None:
            member.pending.append(ev)
            return
        if ev.seq:
            if ev.seq <= member.seq:
                return  # the replay (or an earlier copy) had it
            member.seq = ev.seq
            self.messages_out += 1
        self.push(conn, ev.data)

    def deliver_user(self, ev: UserEvent) -> None:
        conns = self.users.get(ev.user)
        if not conns:
            return
        for conn in list(conns):
            if ev.removed:
                if ev.order in conn.rooms:
                    self.leave(conn, ev.order)
                    self.push(conn, ev.removed)
                continue
            ident = conn.ident
            staff = ident.role == permissions.QUEUE_ROLE
            if ev.side and (staff or not permissions.covers(ident.role, ident.orders, ev.order)):
                continue  # another identity's read state under this id (a staff token reads the shared one)
            notify = ev.notify if ev.notify and conn.inbox and ev.order not in conn.rooms else b""
            if ev.data:
                if staff or (
                    ev.hidden and ident.role == "bot" and not permissions.covers_every_order(ident.role, ident.orders)
                ):
                    # a staff token's total holds its queue, a bot's covers some orders: read from
                    # the store, off the fan-out path (the notify after it, as on every other path)
                    self._totalled(conn, ev.data, notify)
                    continue
                elif ev.hidden and not permissions.covers_every_order(ident.role, ident.orders):
                    # a participant token covers none of the side markers
                    self.push(conn, _retotal(ev.data, _unread_of(ev.data).total - ev.hidden))
                else:
                    self.push(conn, ev.data)
            if notify:
                self.push(conn, notify)

    def deliver_staff(self, ev: StaffEvent) -> None:
        """To each staff connection whose queue holds the order (or that it just left);
        each `unread` gets its connection's own total (chatd.attention)."""
        for conn in list(self.staff):
            user = conn.ident.id
            if user in ev.slots or (ev.only and user != ev.only):
                continue  # a participant there, not staff; or another staff member's follow
            followed = user in ev.followers
            queued = ev.queued or followed
            if not (queued or ev.moved or ev.only):
                continue
            mine = queued and conn.inbox and ev.order not in conn.rooms and user != ev.sender
            self._totalled(conn, ev.followed if followed else ev.unread, ev.notify if mine else b"")

    def _totalled(self, conn: Conn, data: bytes, notify: bytes) -> None:
        """Push an `unread` frame with this connection's own total, read from the store;
        a connection's frames go out in the order they came, each with a total read
        after its change committed."""
        waiting = self._totalling.get(conn)
        if waiting is not None:
            waiting.append((data, notify))
            return
        self._totalling[conn] = [(data, notify)]
        self._spawn(self._push_totalled(conn))

    async def _push_totalled(self, conn: Conn) -> None:
        try:
            while not conn.closed and (batch := self._totalling.get(conn)):
                self._totalling[conn] = []  # what comes during the read gets a read of its own
                total = await self.total_reader(conn.ident)
                for data, notify in batch:
                    self.push(conn, _retotal(data, total))
                    if notify:
                        self.push(conn, notify)
        except Unavailable as exc:  # the database is away: the next change sends a total again
            log.warning("unread total for %s failed: %s", conn.user, exc.message)
        except Exception:  # noqa: BLE001 - the store failed: the next change sends a total again
            log.exception("unread total for %s failed", conn.user)
        finally:
            self._totalling.pop(conn, None)

    def send(self, conn: Conn, data: bytes) -> None:
        """A frame for one connection only (answers, acks, errors)."""
        self.push(conn, data)

    # --- the outbound path ---------------------------------------------------

    def push(self, conn: Conn, data: bytes) -> None:
        out = conn.out
        if out is None:
            if conn.closed:
                return
            conn.out = [data]
            conn.out_bytes = len(data)
            self._dirty.append(conn)
            if not self._scheduled:
                self._scheduled = True
                self._loop.call_soon(self._flush)
        else:
            out.append(data)
            conn.out_bytes += len(data)
            if len(out) > self.queue_frames:
                self.close_slow(conn)

    def _flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        limit = self.buffer_bytes
        for conn in dirty:
            out = conn.out
            if out is None:
                continue
            transport = conn.transport
            if transport is None or transport.is_closing():
                conn.out = None
                continue
            if transport.get_write_buffer_size() > limit:
                if conn.out_bytes > self.queue_bytes:
                    self.close_slow(conn)
                else:
                    self._held.append(conn)  # kernel and transport full: hold, count
                continue
            conn.out = None
            transport.write(out[0] if len(out) == 1 else b"".join(out))
        if self._held and self._held_timer is None:
            self._held_timer = self._loop.call_later(0.02, self._retry_held)

    def _retry_held(self) -> None:
        self._held_timer = None
        held, self._held = self._held, []
        for conn in held:
            if conn.out is not None and not conn.closed:
                self._dirty.append(conn)
        if self._dirty and not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def close_slow(self, conn: Conn) -> None:
        """Its outbound queue is full: drop what it has not taken and close with 1013."""
        if conn.closed:
            return
        self.slow_closes += 1
        log.info("closing slow reader %s (%d frames, %d bytes queued)", conn.user, len(conn.out or ()), conn.out_bytes)
        conn.out = None
        conn.closed = True
        conn.closer(CloseCode.TRY_AGAIN_LATER)

    def all_conns(self) -> list[Conn]:
        return [c for conns in self.users.values() for c in conns]


async def _no_gap(order: str, after: int, before: int) -> list[RoomEvent]:
    return []


async def _no_total(ident: Identity) -> int:
    return 0


def _unread_of(data: bytes) -> Unread:
    return msgspec.json.decode(payload(data), type=Unread)


def _retotal(data: bytes, total: int) -> bytes:
    """An `unread` frame with this connection's own total (see UserEvent, StaffEvent)."""
    u = _unread_of(data)
    return encode_frame(Unread(u.order, u.count, total, u.reasons))
