"""The chat service: what each request does, for the WebSocket and REST edges alike.

It checks permissions, writes through the store, and only after the store
has committed publishes the encoded frames through the relay, in seq order.
It knows nothing of aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from types import EllipsisType
from typing import Literal, TypedDict

import msgspec

from chatd import attention, contact_filter, metrics, responses, workflow
from chatd.attachments import Attachments
from chatd.auth import permissions
from chatd.auth.tokens import Identity
from chatd.blank import is_blank
from chatd.config import LimitsConfig
from chatd.errors import (
    BadRequest,
    BlockedContent,
    ChatError,
    CloseCode,
    Conflict,
    Forbidden,
    NotFound,
    TooLarge,
    Unavailable,
)
from chatd.relay.base import Relay
from chatd.rooms import frames
from chatd.rooms.events import RoomEvent, StaffEvent, UserEvent
from chatd.rooms.expiry import Expiries
from chatd.rooms.hub import Conn, Hub
from chatd.rooms.room import Member, Room
from chatd.store.base import Store
from chatd.store.records import (
    Contact,
    NotifyPrefs,
    OrderChange,
    OrderPlan,
    OrderRecord,
    Person,
    Posted,
    ReadMarker,
    StaffView,
    Waiting,
)
from chatd.store.rows import Actor
from chatd.tasks import stop
from chatd.wire import (
    ID_CHARS,
    STATUS_CHARS,
    Ack,
    AttachmentRef,
    AwaitingReply,
    ErrorFrame,
    HistoryPage,
    InboxEntry,
    InboxPage,
    Joined,
    Left,
    Message,
    NextStatus,
    OrderState,
    Presence,
    ReadMark,
    Receipt,
    ReplyState,
    TypingEvent,
    Unread,
    UserRef,
    encode,
    encode_frame,
    frame,
)
from chatd.workflow import Workflow, Workflows

log = logging.getLogger("chatd.chat")

REPORT_DAYS = (7, 30, 90)  # the windows of the response-times report


class StateFields(TypedDict):
    """The workflow and lifecycle fields of `joined` and `order`, for one role."""

    workflow: str
    status_label: str
    status_tone: str
    next_statuses: list[NextStatus]
    statuses: list[NextStatus]
    closed: bool
    closed_reason: str | None
    closes_at: int | None
    awaiting_reply: AwaitingReply | None


class Disconnect(Exception):
    """Close this connection with `code` (the edge does it)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def actor_of(ident: Identity) -> Actor:
    return Actor(ident.id, ident.name, ident.role, ident.orders, ident.slot_name)


class MarkerJson(TypedDict):
    """POST /api/v1/orders/{order}/read, as JSON: the user's marker after the change."""

    order: str
    user: str
    read_seq: int
    unread: int
    total: int


class Chat:
    """Every use case of the edges; collaborators come in through the constructor."""

    def __init__(
        self,
        store: Store,
        hub: Hub,
        relay: Relay,
        limits: LimitsConfig,
        *,
        attachments: Attachments | None = None,
        contact_filter: str = "off",
        workflows: Workflows | None = None,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        close_clock: Callable[[], float] = time.time,
        reply_within_s: float = 86_400.0,
    ) -> None:
        self.store = store
        self.hub = hub
        self.relay = relay
        self.limits = limits
        self.attachments = attachments  # None: `send` refuses attachment ids
        self.contact_filter = contact_filter  # [filter] mode for messages across the buyer/supplier line
        self.wall_clock = wall_clock  # token expiry is wall-clock time (`exp`)
        self._expiries = Expiries(self._expired, wall_clock)
        self._admitting: dict[str, int] = {}  # user -> connections being admitted right now
        self._typing_rooms: set[str] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._catcher: asyncio.Task[None] | None = None
        self._resyncs: set[asyncio.Task[None]] = set()
        self.closing = False  # shutdown began: /readyz fails
        self.clock = clock  # typing intervals (tests inject one)
        self.workflows = workflows or Workflows()  # [workflow], [workflows.*]: status pipelines
        self.close_clock = close_clock  # wall-clock seconds: when chats close (tests inject one)
        self.reply_within_ms = int(reply_within_s * 1000)  # [sla]: when a waiting buyer's reply is due
        self.deliver_staff = hub.deliver_staff
        hub.on_caught_up = self._caught_up

    async def start(self, catch_up_s: float = 0.0) -> None:
        self._sweeper = asyncio.create_task(self._sweep_typing(), name="chatd-typing")
        if catch_up_s:
            self._catcher = asyncio.create_task(self._run_catch_up(catch_up_s), name="chatd-catch-up")

    async def aclose(self) -> None:
        await stop(self._sweeper, self._catcher, *self._resyncs)
        await self.hub.aclose()

    def online(self, order_id: str) -> frozenset[str]:
        """Participants with a connection joined to the order, on any instance, as far
        as known here: exact for a room watched here (someone here is joined)."""
        return self.hub.online(order_id) | self.relay.online(order_id)

    async def online_now(self, order_id: str) -> frozenset[str]:
        """Like `online`, also for an order nobody here is joined to (REST may reach
        any instance): the relay asks who is joined elsewhere."""
        return (await self.online_now_each([order_id]))[order_id]

    async def online_now_each(self, order_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        """`online_now` of each order, in one round trip to the relay."""
        elsewhere = await self.relay.online_now(order_ids)
        return {o: self.hub.online(o) | elsewhere[o] for o in order_ids}

    # --- the relay's handler --------------------------------------------------

    async def read_gap(self, order_id: str, after: int, before: int) -> list[RoomEvent]:
        """Stored messages with after < seq < before, as room events (gap filling). The
        order is read first and members whose role changed leave: the gap may hold what
        another instance wrote after a removal whose `left` pub/sub did not carry."""
        order = await self.store.get_order(order_id)
        if order is not None:
            self._cut_off_stale(order)
        out: list[RoomEvent] = []
        while True:
            msgs, more = await self.store.history(order_id, True, None, after, min(before - after - 1, 500))
            for m in msgs:
                if m.seq >= before:
                    return out
                out.append(RoomEvent(order_id, encode_frame(m), m.seq, notes=m.kind == "note"))
            if not more or not msgs:
                return out
            after = msgs[-1].seq

    def deliver_room(self, ev: RoomEvent) -> None:
        if ev.origin and ev.typing is not None and not self._remote_typing(ev):
            return
        self.hub.deliver_room(ev)

    def _remote_typing(self, ev: RoomEvent) -> bool:
        """Another instance's typist: shown here until its next event, or until no
        refresh came for `typing_ttl_s` (plus the interval a refresh may wait to be
        forwarded), or its instance left: its stop can be lost with Redis, or die with it."""
        room = self.hub.rooms.get(ev.order)
        if room is None:
            return False
        limits = self.limits
        deadline = self.clock() + limits.typing_ttl_s + 1.0 / limits.typing_per_s
        forward = room.remote_typing(ev, deadline)
        if ev.typing:
            self._typing_rooms.add(ev.order)  # the sweeper ends it
        return forward

    def deliver_user(self, ev: UserEvent) -> None:
        if not ev.removed:
            self.hub.deliver_user(ev)
            return
        # access ended: the user's connections here leave the room, and the room
        # hears that they stopped typing and went offline
        here = next((c for c in self.hub.users.get(ev.user, ()) if ev.order in c.rooms), None)
        room = self.hub.rooms.get(ev.order)
        role = here.rooms[ev.order].role if here is not None else ""
        self.hub.deliver_user(ev)
        if here is not None:
            self._offline(here.ident, ev.order, room, role)

    def resync(self, orders: Iterable[str] | None = None) -> None:
        """After the relay (re)subscribed: active rooms catch up from the store
        (read by a task: the relay's caller never waits for the store)."""
        task = asyncio.get_running_loop().create_task(self._resync(orders))
        self._resyncs.add(task)
        task.add_done_callback(self._resyncs.discard)

    async def _resync(self, orders: Iterable[str] | None = None) -> None:
        try:
            for order_id in list(self.hub.rooms if orders is None else orders):
                order = await self.store.get_order(order_id)
                if order is not None:
                    self._cut_off_stale(order)  # before the catch-up delivers what they may no longer see
                    self.hub.catch_up(order_id, order.last_seq)
        except ChatError as exc:  # store trouble: the next catch-up tries again
            log.warning("catch-up: %s", exc.message)

    def _caught_up(self, order_id: str, missed: list[RoomEvent]) -> None:
        task = asyncio.get_running_loop().create_task(self._recount(order_id, missed))
        self._resyncs.add(task)
        task.add_done_callback(self._resyncs.discard)

    async def _recount(self, order_id: str, missed: list[RoomEvent]) -> None:
        """A catch-up delivered messages from the store: their `unread` and `notify`
        went by pub/sub too and are lost, so each reader connected here who may see
        one of them gets their count now (one read for the order), and `notify` of
        the newest one from someone else. The staff queue's counts are not redone."""
        try:
            readers = await self.store.readers(order_id)
        except ChatError as exc:  # store trouble: the next message brings the counts
            log.warning("recount of %s: %s", order_id, exc.message)
            return
        for ch, sees_notes in readers:
            if ch.user not in self.hub.users:
                continue
            seen = [ev for ev in missed if sees_notes or not ev.notes]
            if not seen:
                continue  # none of it changed their count
            news = next((ev for ev in reversed(seen) if frames.sender_of(ev) != ch.user), None)
            notify = frames.notify_of(order_id, news) if news is not None else b""
            data = encode_frame(Unread(order_id, ch.count, ch.total))
            self.hub.deliver_user(UserEvent(ch.user, data, order_id, notify, side=ch.side, hidden=ch.hidden))

    def _cut_off_stale(self, order: OrderRecord) -> None:
        """Members whose role on `order`, as just read, is not the one they joined in
        leave (`removed`), as `publish_change` would have had them: its `left` goes by
        pub/sub, which keeps nothing while the relay is down, so a supplier replaced
        then stayed in the room on the other instances, notes included."""
        room = self.hub.rooms.get(order.id)
        if room is None:
            return
        for conn, member in list(room.members.items()):
            ident = conn.ident
            if permissions.order_role(ident.id, ident.role, ident.orders, order.id, order.slots) != member.role:
                self.leave(conn, order.id, "removed")

    async def _run_catch_up(self, interval_s: float) -> None:
        """Pub/sub may drop a message without a later one to reveal the gap:
        compare each active room with the store now and then."""
        while True:
            await asyncio.sleep(interval_s)
            await self._resync()

    # --- access -------------------------------------------------------------

    async def _order_and_role(self, ident: Identity, order_id: str) -> tuple[OrderRecord, str]:
        order = await self.store.get_order(order_id)
        if order is None:
            raise NotFound("no such order", ref=order_id)
        role = permissions.order_role(ident.id, ident.role, ident.orders, order_id, order.slots)
        if role is None:
            raise NotFound("no such order", ref=order_id)  # same answer as a missing order
        return order, role

    async def order(self, order_id: str, viewer: Identity | None = None) -> OrderRecord:
        """An order, for an operator: the api key (`viewer` None) or a staff token. `not_found`
        if there is none; `forbidden` to a staff token whose id holds one of its slots, a
        participant there (its figures count notes that participant may not see)."""
        order = await self.store.get_order(order_id)
        if order is None:
            raise NotFound("no such order", ref=order_id)
        if viewer is not None and viewer.id in order.slots:
            raise Forbidden(f"you are a participant of {order_id}: use its chat", ref=order_id)
        return order

    async def order_for(self, ident: Identity, order_id: str) -> OrderRecord:
        """The order, if `ident` has access to it (same `not_found` as a missing order otherwise)."""
        return (await self._order_and_role(ident, order_id))[0]

    # --- orders -----------------------------------------------------------------

    async def register_order(
        self,
        order_id: str,
        status: str | None,
        buyer: Person | None,
        supplier: Person | None,
        sales_rep: Person | None | EllipsisType = ...,
        *,
        workflow_name: str | None = None,
        force: bool = False,
        contacts: Mapping[str, Contact] | None = None,
    ) -> OrderChange:
        """The host platform creates or updates an order (sales_rep `...`: unchanged);
        removed participants are cut off, the room hears the new state. A status
        change follows the order's workflow (as a bot would), or with `force` is
        made outside it (the message says `forced`); it is posted to the chat."""
        if not order_id or len(order_id) > 200:
            raise BadRequest("order id must be 1 to 200 characters")
        online = await self.online_now(order_id)  # for the room's new state, read before the write

        def rule(old: OrderRecord | None) -> OrderPlan:
            return self._order_plan(old, status, workflow_name, force)

        buyer, supplier = self._shown(buyer), self._shown(supplier)
        rep = sales_rep if isinstance(sales_rep, EllipsisType) else self._shown(sales_rep)
        change = await self.store.put_order(
            order_id, status, buyer, supplier, rep, rule=rule, present=online, contacts=contacts
        )
        self.publish_change(change, online)
        return change

    async def assign_buyer_rep(
        self, buyer_id: str, sales_rep: Person | None, contacts: Mapping[str, Contact] | None = None
    ) -> list[OrderChange]:
        """The host platform assigns a buyer's sales rep (None: none): every order of
        the buyer whose rep follows the buyer gets it in one store write; the old rep
        is cut off (`left`, `removed`) and each room hears its new state."""
        if not buyer_id or len(buyer_id) > 200:
            raise BadRequest("buyer id must be 1 to 200 characters")
        changes = await self.store.set_buyer_rep(buyer_id, self._shown(sales_rep), contacts)
        changed = [c for c in changes if c.state_changed]
        online = await self.online_now_each([c.order.id for c in changed]) if changed else {}
        for change in changed:
            self.publish_change(change, online[change.order.id])
        return changes

    def _shown(self, person: Person | None) -> Person | None:
        """A participant as the others see them: with the contact filter on, the
        contact details in their name masked (contact_filter.masked_name)."""
        if person is None or self.contact_filter == "off":
            return person
        name = contact_filter.masked_name(person.name, ID_CHARS)
        return person if name == person.name else msgspec.structs.replace(person, name=name)

    def _now_ms(self) -> int:
        return int(self.close_clock() * 1000)

    def _order_plan(self, old: OrderRecord | None, status: str | None, name: str | None, force: bool) -> OrderPlan:
        """What a registration does to workflow, status and close time (run in the store's write)."""
        now = self._now_ms()
        if status is not None:
            workflow.check_status(status)
        if old is None:
            wf = self.workflows.pick(name)
            st = wf.initial if status is None else status
            if not wf.has(st):
                raise BadRequest(f"workflow {wf.name} has no status {st}")
            return OrderPlan(wf.name, st, workflow.closes_at(wf, st, now))
        wf = self.workflows.get(old.workflow) if name is None else self.workflows.pick(name)
        if wf.name != old.workflow and not (self.workflows.get(old.workflow).has(old.status) and wf.has(old.status)):
            raise Conflict(f"status {old.status} is not in both workflows {old.workflow} and {wf.name}")
        if status is None or status == old.status:
            kept = old.closes_at if old.closes_at is not None else workflow.closes_at(wf, old.status, now)
            return OrderPlan(wf.name, old.status, kept if wf.terminal(old.status) else None)
        if not wf.has(status):  # no transition can reach it, forced or not
            raise BadRequest(f"workflow {wf.name} has no status {status}")
        refusal = wf.refusal(old.status, status, "bot")  # the api key moves an order on as a bot would
        if refusal is not None and not force:
            raise refusal
        text = workflow.changed_text(wf, status)
        closes = workflow.closes_at(wf, status, now)
        return OrderPlan(wf.name, status, closes, post=True, forced=refusal is not None, text=text)

    # --- what each user may do next, and whether the chat is closed ------------------

    def closed(self, order: OrderRecord) -> bool:
        """Whether the order's chat is closed to participants now."""
        return workflow.closed(order, self._now_ms())

    def check_open(self, order: OrderRecord, role: str, ref: str | None = None) -> None:
        """Refuse a participant's post, upload or typing in a closed chat (`forbidden`)."""
        if order.closes_at is not None:  # most orders never close: no clock read per message
            workflow.check_open(order, role, self._now_ms(), ref)

    def _state(self, order: OrderRecord, role: str) -> StateFields:
        """The workflow fields of `joined` and `order` for a member of `role`."""
        wf: Workflow = self.workflows.get(order.workflow)
        label, tone = wf.describe(order.status)
        closed = workflow.closed(order, self._now_ms())
        return {
            "workflow": wf.name,
            "status_label": label,
            "status_tone": tone,
            "next_statuses": [NextStatus(s.name, s.label, s.tone) for s in wf.next_for(order.status, role)],
            "statuses": [NextStatus(s.name, s.label, s.tone) for s in wf.statuses],
            "closed": closed,
            "closed_reason": order.status if closed else None,
            "closes_at": order.closes_at,
            "awaiting_reply": (
                responses.awaiting(order.waiting, self.reply_within_ms) if permissions.sees_notes(role) else None
            ),
        }

    def publish_waiting(self, order_id: str, waiting: Waiting | None) -> None:
        """The reply clock started, stopped or escalated: to the room's supplier side,
        staff and bots (never a buyer: the frame goes where notes go)."""
        data = encode_frame(ReplyState(order_id, responses.awaiting(waiting, self.reply_within_ms)))
        self.relay.publish_room(RoomEvent(order_id, data, notes=True))

    async def notification_prefs(self, user: str) -> NotifyPrefs:
        if not user or len(user) > 200:
            raise BadRequest("user id must be 1 to 200 characters")
        return await self.store.notify_prefs(user)

    async def set_notification_prefs(self, user: str, prefs: NotifyPrefs) -> NotifyPrefs:
        """E-mail on or off, and the orders nothing is scheduled for (their pending notifications go)."""
        if not user or len(user) > 200:
            raise BadRequest("user id must be 1 to 200 characters")
        await self.store.set_notify_prefs(user, prefs)
        return prefs

    async def response_report(self, supplier: str | None, sales_rep: str | None, days: int) -> responses.Report:
        """First-response times over the last `days` (7, 30 or 90) for a supplier's
        and/or a sales rep's orders (neither: every order), chatd.responses.report."""
        if days not in REPORT_DAYS:
            raise BadRequest(f"days must be one of {', '.join(map(str, REPORT_DAYS))}")
        now = self._now_ms()
        periods = await self.store.response_periods(now - days * 86_400_000, supplier, sales_rep)
        return responses.report(periods, days, self.reply_within_ms / 1000, now)

    async def no_reply_needed(self, conn: Conn, order_id: str, seq: int) -> None:
        """The supplier side or staff marks the buyer's message `seq` as needing no
        reply (chatd.responses): the room hears `reply_state` if the clock changed,
        the caller always does."""
        if order_id not in conn.rooms:
            raise BadRequest("join the order before sending no_reply_needed", ref=order_id)
        changed, waiting = await self.store.dismiss_wait(actor_of(conn.ident), order_id, seq)
        if changed:
            self.publish_waiting(order_id, waiting)
        else:
            self.hub.send(conn, encode_frame(ReplyState(order_id, responses.awaiting(waiting, self.reply_within_ms))))

    # --- health -------------------------------------------------------------------

    @property
    def relay_healthy(self) -> bool:
        return self.relay.healthy

    async def check_writable(self) -> None:
        """Raises if the store cannot commit right now."""
        await self.store.check_writable()

    # --- rooms ----------------------------------------------------------------

    async def join(self, conn: Conn, order_id: str, since: int | None, limit: int | None) -> None:
        ident = conn.ident
        if ident.expired():
            raise Disconnect(CloseCode.UNAUTHORIZED, "token expired")
        order, role = await self._order_and_role(ident, order_id)
        if limit is None:
            limit = self.limits.replay_default if since is None else self.limits.replay_since_default
        if limit < 0 or (since is not None and since < 0):
            raise BadRequest("since and limit must not be negative", ref=order_id)
        limit = min(limit, self.limits.replay_max)  # capped before the store reads a page
        order, role, member, first = await self._subscribe(conn, order_id, role)
        sees = permissions.sees_notes(role)
        if first and permissions.has_presence(role):  # _offline says offline by the same rule
            self.relay.presence(order_id, ident.id, True, encode_frame(Presence(order_id, ident.id, True)))
        # Subscribed before reading: anything published from here on waits in
        # member.pending and is released without what the replay covers.
        msgs, truncated = await self.store.replay(order_id, sees, since, limit)
        if role == permissions.QUEUE_ROLE:  # staff read the shared staff marker
            (read_seq, unread), last_visible = await self.store.staff_marker(order_id), order.last_seq
        else:
            read_seq, unread, last_visible = await self.store.marker(order_id, ident.id, sees, order.last_seq)
        receipts = [ReadMark(user, seq) for user, seq in await self.store.receipts(order_id, ident.id, sees)]
        joined = Joined(
            order=order_id,
            status=order.status,
            dispute=order.dispute,
            participants=order.participants(self.online(order_id)),
            # the replay reaches the newest visible message as it read it; a message
            # committed after that (seen by the marker's read) comes live, not twice
            last_seq=msgs[-1].seq if msgs else last_visible,
            read_seq=read_seq,
            unread=unread,
            truncated=truncated,
            receipts=receipts,
            **self._state(order, role),
        )
        # one answer, one write: `joined` and the replay count as one queued frame (their bytes
        # in full), so a replay of `replay_max` never trips `outbound_queue_frames`
        self.hub.send(conn, b"".join([encode_frame(joined), *map(encode_frame, msgs)]))
        top = max(order.last_seq, msgs[-1].seq if msgs else 0)
        self.hub.release(conn, order_id, member, top)
        if role == permissions.QUEUE_ROLE:
            await self._follow_on_join(conn, order_id)

    async def _subscribe(self, conn: Conn, order_id: str, role: str) -> tuple[OrderRecord, str, Member, bool]:
        """Subscribe `conn` to the room as `role`, then read the order again. A change of
        its participants that committed after the first read and before the subscription
        sent its `left` to the members of then, not to this connection: the second read
        sees it, so the join goes on as what the identity is now (or is refused)."""
        ident = conn.ident
        for _ in range(3):
            member, first = self.hub.join(conn, order_id, permissions.sees_notes(role), role)
            await self.relay.load_room(order_id)  # presence elsewhere; no wait in-process
            order, now = await self._order_role_now(ident, order_id)
            if order is not None and now == role:
                return order, role, member, first
            self.hub.leave(conn, order_id)
            if not now:
                raise NotFound("no such order", ref=order_id)  # as if it never had access
            role = now
        raise Unavailable("the order's participants kept changing while joining; join again", ref=order_id)

    async def _follow_on_join(self, conn: Conn, order_id: str) -> None:
        """Joining an order as staff follows it (chatd.attention); a store that cannot
        write now does not fail the join."""
        ident = conn.ident
        try:
            if await self.store.following(ident.id, order_id):
                return
            changed, view = await self.store.follow(actor_of(ident), order_id, True)
        except ChatError as exc:
            log.warning("follow on join of %s: %s", order_id, exc.message)
            return
        if changed:
            self.publish_staff(view, only=ident.id)

    def arm_expiry(self, conn: Conn) -> None:
        """Close the connection (4401) when its token expires; a refresh moves this."""
        self._expiries.arm(conn)

    def _expired(self, conn: Conn) -> None:
        if conn.closed:
            return
        self.hub.send(conn, encode_frame(ErrorFrame("unauthorized", "token expired")))
        conn.closed = True  # the error goes out first: the close waits for the next loop turn
        conn.closer(CloseCode.UNAUTHORIZED, "token expired")

    async def reauth(self, conn: Conn, ident: Identity) -> None:
        """A refreshed token: the connection stays in the rooms it still covers in the role it joined in."""
        conn.ident = ident
        self.arm_expiry(conn)
        for order_id, member in list(conn.rooms.items()):
            role = await self._role_now(ident, order_id)
            if conn.rooms.get(order_id) is not member:
                continue  # left (or rejoined) while the order was read
            if role != member.role:
                # no access, or another role (a slot change whose removal has not reached
                # this instance yet): removed, as that change removes them; they go offline
                # by the role they went online by, and a rejoin starts with the new one
                self.leave(conn, order_id, "removed")

    def leave(self, conn: Conn, order_id: str, reason: Literal["leave", "removed"] = "leave") -> None:
        member = conn.rooms.get(order_id)
        room = self.hub.rooms.get(order_id)  # gone from the hub once its last member leaves
        last = self.hub.leave(conn, order_id)
        self.hub.send(conn, encode_frame(Left(order_id, reason)))
        if member is not None and last:
            self._offline(conn.ident, order_id, room, member.role)

    async def admit(self, user: str) -> bool:
        """One more connection for `user`, within `max_conns_per_user` on all instances?"""
        local = self.hub.count(user) + self._admitting.get(user, 0)
        self._admitting[user] = self._admitting.get(user, 0) + 1
        try:
            return await self.relay.admit(user, self.limits.max_conns_per_user, local)
        finally:
            if (left := self._admitting[user] - 1) > 0:
                self._admitting[user] = left
            else:
                del self._admitting[user]

    def went_away(self, conn: Conn) -> None:
        """A connection closed: presence for the rooms its user has now left."""
        self._expiries.disarm(conn)
        rooms = {order_id: (self.hub.rooms.get(order_id), m.role) for order_id, m in conn.rooms.items()}
        for order_id in self.hub.remove_conn(conn):
            self._offline(conn.ident, order_id, *rooms[order_id])
        self.relay.release(conn.user, self.hub.count(conn.user))

    def _offline(self, ident: Identity, order_id: str, room: Room | None, role: str) -> None:
        """The user's last connection left the room: they stop typing, and go offline.

        `role` is the membership's, the role `join` announced them online by (a
        slot change removes the members it concerns, a refresh that finds another
        role leaves the room), so offline follows the same rule as online,
        `permissions.has_presence`, and no store read is needed here."""
        if room is not None and (note := room.typing_clear(ident.id)) is not None:
            self._publish_typing(ident, order_id, False, role, note)  # the sweeper could no longer name them
        if not permissions.has_presence(role):
            return
        self.relay.presence(order_id, ident.id, False, encode_frame(Presence(order_id, ident.id, False)))

    # --- messages ---------------------------------------------------------------

    def _check_text(self, text: str, ref: str | None, allow_empty: bool = False) -> None:
        if len(text) > self.limits.max_text_chars:
            raise TooLarge(f"text is longer than {self.limits.max_text_chars} characters", ref=ref)
        if "\x00" in text:
            raise BadRequest("text may not contain U+0000 (NUL)", ref=ref)
        if not allow_empty and is_blank(text):
            raise BadRequest("text is empty (or only whitespace and invisible characters)", ref=ref)

    async def send(
        self, actor: Actor, order_id: str, client_id: str, text: str, kind: str, attachments: list[str] | None = None
    ) -> Ack:
        if not client_id:
            raise BadRequest("client_id is required", ref=order_id)
        started = time.perf_counter()
        refs = None
        if attachments:
            if self.attachments is None:
                raise BadRequest("attachments are not supported by this server", ref=client_id)
            try:
                refs = await self.attachments.resolve(actor.id, order_id, attachments, client_id)
            except BadRequest:  # a retry whose upload retention has deleted since is answered as before
                if (original := await self.store.sent(order_id, actor.id, client_id)) is None:
                    raise
                return Ack(order_id, client_id, original.seq, original.ts, True)
        self._check_text(text, client_id, allow_empty=bool(refs))
        if refs:
            await self._screen_files(actor, order_id, kind, client_id, refs)
        (screened,) = await self._screen(actor, order_id, kind, client_id, text)
        assert screened is not None  # a text screened stays a text
        text = screened
        # who is joined now, on any instance, decides whom the outbox's message.created addresses
        present = await self.online_now(order_id)
        posted = await self.store.post(
            actor,
            order_id,
            text,
            client_id,
            kind,
            attachments=refs,
            present=present,
            rule=lambda order, role: self.check_open(order, role, client_id),
        )
        self.publish_posted(posted, present)
        m = posted.message
        metrics.ACK_SECONDS.observe(time.perf_counter() - started)
        return Ack(order_id, client_id, m.seq, m.ts, posted.duplicate)

    async def check_send(self, actor: Actor, order_id: str, client_id: str, text: str, with_files: bool) -> None:
        """What `send` checks of a text message (length, blank, the contact filter),
        without writing: for a caller that uploads its files first (reply by e-mail),
        so a refused text leaves no upload behind."""
        self._check_text(text, client_id, allow_empty=with_files)
        await self._screen(actor, order_id, "text", client_id, text)

    async def _screen(
        self, actor: Actor, order_id: str, kind: str, client_id: str, *texts: str | None
    ) -> list[str | None]:
        """The contact filter ([filter] mode) for what crosses the buyer/supplier line.

        Each text is masked or refused (with `kind` "status", the first is the
        status value). The `client_id` is echoed to the other participants too,
        but it is the retry key and cannot be masked: one the filter flags is
        refused in both modes (a generated id never is).
        A participant's token is scanned before the order is read: most messages
        hold nothing, and then who writes in which role does not matter. Staff
        and bot tokens, usually exempt, read the order first.
        """
        if self.contact_filter == "off" or kind == "note":  # notes never reach the buyer
            return list(texts)
        participant = actor.role in permissions.CONTACT_FILTERED
        if not participant and not await self._filtered(actor, order_id, kind):
            return list(texts)
        in_id = contact_filter.scan_id(client_id)
        found = [contact_filter.scan(t) if t else [] for t in texts]
        if not in_id and not any(found):
            return list(texts)
        if participant and not await self._filtered(actor, order_id, kind):
            return list(texts)
        try:
            if in_id:
                raise BlockedContent(f"contact details are not allowed in client_id: {contact_filter.describe(in_id)}")
            mode = self.contact_filter
            out = [contact_filter.settle(t, f, mode) if t else (t, []) for t, f in zip(texts, found, strict=True)]
            for i, (masked, hits) in enumerate(out):
                if hits and masked:
                    self._check_masked(masked, kind == "status" and i == 0)
        except ChatError as exc:
            metrics.CONTACT_FILTER.labels("blocked").inc()
            exc.ref = client_id
            raise
        metrics.CONTACT_FILTER.labels("masked").inc()
        return [t for t, _ in out]

    async def _screen_files(
        self, actor: Actor, order_id: str, kind: str, client_id: str, refs: Sequence[AttachmentRef]
    ) -> None:
        """A file's name was screened at its upload, by the uploader's role then; one
        uploaded as staff or a bot and sent once its uploader holds a participant's
        slot is screened again here, and refused in both modes: its download keeps
        the name it was stored with."""
        if self.contact_filter == "off" or kind == "note":
            return
        found = [f for r in refs for f in contact_filter.scan(r.name)]
        if found and await self._filtered(actor, order_id, kind):
            metrics.CONTACT_FILTER.labels("blocked").inc()
            raise BlockedContent(
                f"contact details are not allowed in a file's name ({contact_filter.describe(found)}):"
                " upload the file again under another name",
                ref=client_id,
            )

    def _check_masked(self, text: str, status: bool) -> None:
        """Masking lengthens a text ("x.io" becomes "[link removed]"), but what is stored keeps
        the bound the text was checked against: past it, refused as a longer text is."""
        if status:
            if len(text) > STATUS_CHARS:
                raise BadRequest(f"status is longer than {STATUS_CHARS} characters once contact details are masked")
        elif len(text) > self.limits.max_text_chars:
            raise TooLarge(
                f"text is longer than {self.limits.max_text_chars} characters once contact details are masked"
            )

    async def _filtered(self, actor: Actor, order_id: str, kind: str) -> bool:
        """Whether the filter applies to what `actor` writes on this order now."""
        order = await self.store.get_order(order_id)
        return order is not None and contact_filter.applies(actor.role_in(order), kind)

    async def set_status(self, actor: Actor, order_id: str, status: str, client_id: str, text: str | None) -> Ack:
        if not status or len(status) > STATUS_CHARS:
            raise BadRequest(f"status must be 1 to {STATUS_CHARS} characters", ref=client_id)
        workflow.check_status(status, client_id)
        if text is not None:
            self._check_text(text, client_id, allow_empty=True)
        # the status value shows in the order's state and in "Status changed to ..."
        screened, text = await self._screen(actor, order_id, "status", client_id, status, text)
        assert screened is not None  # a text screened stays a text
        status = screened
        if not text and (known := await self.store.get_order(order_id)) is not None:
            text = workflow.changed_text(self.workflows.get(known.workflow), status)  # the label, not the id
        present = await self.online_now(order_id)

        def rule(order: OrderRecord, role: str) -> int | None:
            """The transition, against the status as locked in the write."""
            wf = self.workflows.get(order.workflow)
            if (refusal := wf.refusal(order.status, status, role)) is not None:
                refusal.ref = client_id
                raise refusal
            return workflow.closes_at(wf, status, self._now_ms())

        posted = await self.store.set_status(actor, order_id, status, client_id, text, present=present, rule=rule)
        self.publish_posted(posted, present)
        return Ack(order_id, client_id, posted.message.seq, posted.message.ts, posted.duplicate)

    async def dispute(self, actor: Actor, order_id: str, action: str, client_id: str, reason: str | None) -> Ack:
        if reason is not None:
            self._check_text(reason, client_id, allow_empty=True)
        (reason,) = await self._screen(actor, order_id, "dispute", client_id, reason)
        present = await self.online_now(order_id)
        posted = await self.store.dispute(actor, order_id, action, client_id, reason, present=present)
        self.publish_posted(posted, present)
        return Ack(order_id, client_id, posted.message.seq, posted.message.ts, posted.duplicate)

    async def help(self, actor: Actor, order_id: str, client_id: str, text: str | None) -> Ack:
        """A participant asks the platform for help (chatd.attention): a message (from a
        buyer a `system` message all see, from the supplier side a `note`) and the
        order's open help request, in one write; staff hear of it in their queue."""
        if text is not None:
            self._check_text(text, client_id, allow_empty=True)
        order = await self.store.get_order(order_id)
        if order is None:
            raise NotFound("no such order", ref=client_id)
        role = actor.role_in(order)
        if not permissions.may_ask_help(role):
            raise Forbidden("staff and bots answer help requests; they do not ask", ref=client_id)
        kind = attention.help_kind(role)
        (text,) = await self._screen(actor, order_id, kind, client_id, text)  # a buyer's reaches the supplier
        body = attention.help_text(text)
        present = await self.online_now(order_id)

        def rule(locked: OrderRecord, now: str) -> tuple[str, str]:
            """The role as the write finds it: screened and worded for the role read above."""
            if not permissions.may_ask_help(now):
                raise Forbidden("staff and bots answer help requests; they do not ask", ref=client_id)
            if attention.help_kind(now) != kind:
                raise Conflict("your role on this order changed meanwhile: ask again", ref=client_id)
            self.check_open(locked, now, client_id)
            return kind, body

        posted = await self.store.request_help(actor, order_id, client_id, present, rule)
        self.publish_posted(posted, present)
        return Ack(order_id, client_id, posted.message.seq, posted.message.ts, posted.duplicate)

    def publish_posted(self, posted: Posted, online: frozenset[str] | None = None) -> None:
        """Fan a committed message out: room, then each reader's unread and notify
        (`online`: who is joined, for a new order state; None: as known here)."""
        if posted.duplicate:
            return
        m = posted.message
        metrics.message_in(m.kind)
        raw = encode(m)
        self.relay.publish_room(RoomEvent(m.order, frame(raw), m.seq, notes=m.kind == "note"))
        notify = frame(b'{"type":"notify","order":' + encode(m.order) + b',"message":' + raw + b"}")
        publish_user = self.relay.publish_user
        for ch in posted.unread:
            data = encode_frame(Unread(m.order, ch.count, ch.total))
            publish_user(
                UserEvent(
                    ch.user, data, m.order, notify if ch.user != m.sender.id else b"", side=ch.side, hidden=ch.hidden
                )
            )
        if posted.staff is not None:  # the order is in staff queues (or just left one)
            self.publish_staff(posted.staff, notify, m.sender.id)
        if posted.waiting_changed:
            self.publish_waiting(m.order, posted.waiting)
        if posted.order is not None:
            self.publish_order(posted.order, online)

    def publish_staff(self, view: StaffView, notify: bytes = b"", sender: str = "", only: str = "") -> None:
        """An order's place in the staff queues to every staff connection it concerns, on
        every instance (chatd.attention): `unread` with the shared marker's count and why
        it is queued, `notify` for a new message (`notify`, sent by `sender`); `only`:
        that staff member's own queue changed (a follow)."""
        shared = view.reasons
        self.relay.publish_staff(
            StaffEvent(
                view.order,
                encode_frame(Unread(view.order, view.unread, 0, shared)),
                encode_frame(Unread(view.order, view.unread, 0, attention.reasons_for(shared, True))),
                notify,
                sender,
                view.followers,
                view.slots,
                queued=bool(shared),
                moved=view.moved,
                only=only,
            )
        )

    def publish_order(self, order: OrderRecord, online: frozenset[str] | None = None) -> None:
        """The order's new state to its room: one frame per role when what each
        may do next differs (`next_statuses`), else one for everyone."""
        if online is None:
            online = self.online(order.id)
        participants = order.participants(online)
        frames = {
            role: encode_frame(
                OrderState(order.id, order.status, order.dispute, participants, **self._state(order, role))
            )
            for role in sorted(permissions.ROLES)
        }
        if len(set(frames.values())) == 1:
            self.relay.publish_room(RoomEvent(order.id, next(iter(frames.values()))))
            return
        for role, data in frames.items():
            self.relay.publish_room(RoomEvent(order.id, data, role=role))

    def publish_change(self, change: OrderChange, online: frozenset[str] | None = None) -> None:
        """After an order upsert: cut removed users off first (the status message the
        change posted is not theirs), then tell those who left or entered a slot their
        counts and the room its new state (`online`: who is joined, as in `publish_posted`)."""
        order_id = change.order.id
        left = encode_frame(Left(order_id, "removed"))
        for user in change.removed:
            self.relay.publish_user(UserEvent(user, order=order_id, removed=left))
        place = change.staff  # set when someone's staff queue gained or lost the order
        took = [u for u in change.queue_moved if place is not None and u in place.slots]
        if place is not None and took:
            # their staff connections hear it left their queue first, then its count as their
            # order; the event names no slots, or theirs would keep it from them
            gone = encode_frame(Unread(order_id, place.unread, 0, []))
            for user in took:
                self.relay.publish_staff(StaffEvent(order_id, gone, gone, only=user))
        for ch in (*change.totals, *change.entered):  # before the status message, which counts on from them
            self.relay.publish_user(
                UserEvent(ch.user, encode_frame(Unread(order_id, ch.count, ch.total)), order_id, hidden=ch.hidden)
            )
        for user in change.queue_moved:
            if place is not None and user not in took:  # out of the slots: back in their queue
                self.publish_staff(place, only=user)
        if change.posted is not None:
            self.publish_posted(change.posted, online)
        if change.state_changed and not change.created:
            self.publish_order(change.order, online)

    # --- typing, read, history, inbox -----------------------------------------------

    async def typing(self, conn: Conn, order_id: str, active: bool, note: bool = False) -> None:
        """`note`: the user is writing an internal note, which only note readers may know of."""
        if order_id not in conn.rooms:
            raise BadRequest("join the order before sending typing", ref=order_id)
        role = conn.rooms[order_id].role
        if note and active and not permissions.sees_notes(role):
            raise Forbidden("only the supplier side, staff and bots write notes", ref=order_id)
        if active and role in permissions.PARTICIPANT_ROLES:  # nobody types in a closed chat
            order = await self.store.get_order(order_id)
            if order is not None:
                self.check_open(order, role, order_id)
            if order_id not in conn.rooms:
                return  # left while the order was read
        room = self.hub.rooms[order_id]
        limits, now, role = self.limits, self.clock(), conn.rooms[order_id].role
        if active and room.typing_switch(conn.user, note, now):  # what was shown stops for those shown it
            self._publish_typing(conn.ident, order_id, False, role, not note)
        forward = room.typing_update(conn.user, active, now, limits.typing_ttl_s, 1.0 / limits.typing_per_s, note)
        if forward is not None:
            self._publish_typing(conn.ident, order_id, forward, role, room.typing_note(conn.user))
        if room.typing:
            self._typing_rooms.add(order_id)

    def _publish_typing(self, ident: Identity, order_id: str, active: bool, room_role: str, note: bool) -> None:
        """`note`: about an internal note, so to note readers only (never a buyer)."""
        role = room_role or ident.role
        ev = TypingEvent(order_id, UserRef(ident.id, actor_of(ident).name_as(role), role), active)
        self.relay.publish_room(RoomEvent(order_id, encode_frame(ev), skip_user=ident.id, notes=note, typing=active))

    async def _role_now(self, ident: Identity, order_id: str) -> str | None:
        """The identity's role on the order as stored now (None: no access)."""
        return (await self._order_role_now(ident, order_id))[1]

    async def _order_role_now(self, ident: Identity, order_id: str) -> tuple[OrderRecord | None, str | None]:
        """The order as stored now and the identity's role on it (None: no such order, no access)."""
        order = await self.store.get_order(order_id)
        if order is None:
            return None, None
        return order, permissions.order_role(ident.id, ident.role, ident.orders, order_id, order.slots)

    async def _sweep_typing(self) -> None:
        """Send typing changes held back to the end of their interval, and
        `active: false` for typists whose refresh did not come in time (here
        only, for those shown here from another instance)."""
        while True:
            await asyncio.sleep(0.25)
            now = self.clock()
            interval = 1.0 / self.limits.typing_per_s
            for order_id in list(self._typing_rooms):
                room = self.hub.rooms.get(order_id)
                if room is None:
                    self._typing_rooms.discard(order_id)
                    continue
                for user, active in room.typing_due(now, interval):
                    found = self._ident_in_room(room, user)
                    if found is not None:
                        self._publish_typing(found[0], order_id, active, found[1], room.typing_note(user))
                for shown in room.remote_due(now, self.relay.departed):
                    self.hub.deliver_room(frames.typing_stopped(shown))
                if not room.typing and not room.remote:
                    self._typing_rooms.discard(order_id)

    @staticmethod
    def _ident_in_room(room: Room, user: str) -> tuple[Identity, str] | None:
        for conn, member in room.members.items():
            if conn.ident.id == user:
                return conn.ident, member.role
        return None

    async def read(self, conn: Conn, order_id: str, seq: int) -> None:
        if seq < 0:
            raise BadRequest("seq must not be negative", ref=order_id)
        ident = conn.ident
        marker = await self.store.mark_read(actor_of(ident), order_id, ident.id, seq)
        if marker is None:
            return
        if marker.role == permissions.QUEUE_ROLE:  # the shared staff marker moved, for every staff member
            if marker.staff is not None:
                self.publish_staff(marker.staff)
            return
        self.relay.publish_user(
            UserEvent(
                ident.id,
                encode_frame(Unread(order_id, marker.unread, marker.total)),
                order_id,
                side=marker.side,
                hidden=marker.hidden,
            )
        )
        if marker.role in permissions.PARTICIPANT_ROLES:
            self._publish_receipt(order_id, ident.id, marker)

    def _publish_receipt(self, order_id: str, user: str, marker: ReadMarker) -> None:
        """Members who see notes get the marker; the others never a note's seq:
        the newest message they may see up to it, once it moved."""
        publish = self.relay.publish_room
        if marker.plain_seq == marker.read_seq:
            publish(RoomEvent(order_id, encode_frame(Receipt(order_id, user, marker.read_seq))))
            return
        publish(RoomEvent(order_id, encode_frame(Receipt(order_id, user, marker.read_seq)), notes=True))
        if marker.plain_seq > marker.plain_before:
            publish(RoomEvent(order_id, encode_frame(Receipt(order_id, user, marker.plain_seq)), plain=True))

    async def set_marker(self, order_id: str, user: str, seq: int, viewer: Identity | None = None) -> MarkerJson:
        """REST: an operator (as in `order`) sets a user's marker (may move backward: mark unread)."""
        if viewer is not None:
            await self.order(order_id, viewer)
        marker = await self.store.mark_read(None, order_id, user, seq, backward=True)
        if marker is None:
            read_seq, unread, _ = await self.store.marker(order_id, user, True, 0)
            return {
                "order": order_id,
                "user": user,
                "read_seq": read_seq,
                "unread": unread,
                "total": await self.store.total_unread(user),
            }
        self.relay.publish_user(
            UserEvent(
                user,
                encode_frame(Unread(order_id, marker.unread, marker.total)),
                order_id,
                side=marker.side,
                hidden=marker.hidden,
            )
        )
        return {
            "order": order_id,
            "user": user,
            "read_seq": marker.read_seq,
            "unread": marker.unread,
            "total": marker.total,
        }

    async def messages_page(
        self, viewer: Identity | None, order_id: str, before: int | None, after: int | None, limit: int | None
    ) -> HistoryPage:
        """A page of the order's messages as `viewer` (None: the api key) may see them."""
        sees = await self._viewer_sees_notes(viewer, order_id)
        limit = self._page_limit(limit)
        msgs, more = await self.store.history(order_id, sees, before, after, limit)
        return HistoryPage(order_id, msgs, more)

    async def export(self, viewer: Identity | None, order_id: str) -> AsyncIterator[list[Message]]:
        """The messages `viewer` (None: the api key) may see, in chunks, up to the order's
        newest when this is awaited: a snapshot, so an export ends even on a busy order.

        Access is checked when this is awaited (`not_found` before any response starts)
        and again before each chunk, on the order as it is then: a viewer whose access
        ended (removed, replaced, the token expired) gets no further chunk, the iterator
        just ends; one whose role changed (a sales rep made the buyer) gets notes or not
        by the role they have now."""
        order = await self.order(order_id)

        def rule(now: OrderRecord) -> bool | None:
            if viewer is None:
                return True
            if viewer.expired(self.wall_clock()):
                return None
            role = permissions.order_role(viewer.id, viewer.role, viewer.orders, order_id, now.slots)
            return None if role is None else permissions.sees_notes(role)

        if rule(order) is None:
            raise NotFound("no such order", ref=order_id)  # same answer as a missing order
        return self.store.export(order_id, rule, order.last_seq)

    async def _viewer_sees_notes(self, viewer: Identity | None, order_id: str) -> bool:
        """Whether `viewer` may read the order (`not_found` otherwise), and if notes are shown."""
        if viewer is None:
            await self.order(order_id)
            return True
        _, role = await self._order_and_role(viewer, order_id)
        return permissions.sees_notes(role)

    def _page_limit(self, limit: int | None) -> int:
        if limit is None:
            return self.limits.history_default
        if limit < 1:
            raise BadRequest("limit must be at least 1")
        return min(limit, self.limits.history_max)

    async def inbox(
        self, conn: Conn, limit: int | None, cursor: str | None, only: list[str] | None = None
    ) -> InboxPage:
        """A page of the user's inbox; with `only`, of those of their orders alone."""
        conn.inbox = True
        if limit is None:
            limit = len(only) if only else 50
        if limit < 1:
            raise BadRequest("limit must be at least 1")
        ident = conn.ident
        entries, total, next_cursor = await self.store.inbox(ident, min(limit, self.limits.inbox_max), cursor, only)
        orders = await self.store.orders([e[0] for e in entries]) if entries else {}
        page = []
        for e in entries:  # the reply clock, for those who may see it on that order (never a buyer)
            order = orders.get(e[0])
            role = order and permissions.order_role(ident.id, ident.role, ident.orders, order.id, order.slots)
            waiting = order.waiting if order and role and permissions.sees_notes(role) else None
            page.append(InboxEntry(*e, awaiting_reply=responses.awaiting(waiting, self.reply_within_ms)))
        return InboxPage(page, total, next_cursor, only)


def to_builtins(obj: object) -> object:
    return msgspec.to_builtins(obj)
