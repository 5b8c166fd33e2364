"""Record types the store hands out: plain values, no I/O."""

from __future__ import annotations

import msgspec

from chatd.wire import DisputeState, Message, Participant


class Person(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    name: str
    avatar_url: str | None = None  # shown beside their messages (participants' frames)


class Contact(msgspec.Struct, frozen=True):
    """How chatd reaches a user outside the chat: for notifications only, never
    sent to another participant. None: not given (an upsert keeps the stored value);
    "" clears it."""

    email: str | None = None
    phone: str | None = None
    locale: str | None = None


class Waiting(msgspec.Struct, frozen=True):
    """The buyer waits for the business side (chatd.responses): since their
    message `seq` at `since` (ms); `escalated` once `[sla] reply_within_s` passed."""

    seq: int
    since: int
    escalated: bool = False


class HelpState(msgspec.Struct, frozen=True):
    """An open help request (chatd.attention): who asked last, when (ms), and the
    message that asked (a later request while it is open replaces these)."""

    by: str
    ts: int
    seq: int


class OrderRecord(msgspec.Struct):
    id: str
    status: str
    buyer: Person
    supplier: Person
    sales_rep: Person | None
    dispute: DisputeState | None
    last_seq: int
    last_ts: int
    created_ts: int
    workflow: str = "free"  # chatd.workflow: the order's status pipeline
    closes_at: int | None = None  # ms: its chat closes to participants then (a terminal status)
    waiting: Waiting | None = None  # the buyer waits for a reply
    help: HelpState | None = None  # a participant asked the platform for help (staff only see it)

    @property
    def slots(self) -> tuple[str, str, str | None]:
        return (self.buyer.id, self.supplier.id, self.sales_rep.id if self.sales_rep else None)

    def participants(self, online: frozenset[str] = frozenset()) -> list[Participant]:
        slots = [(self.buyer, "buyer"), (self.supplier, "supplier")]
        if self.sales_rep:
            slots.append((self.sales_rep, "sales_rep"))
        return [Participant(p.id, p.name, role, p.id in online, p.avatar_url) for p, role in slots]

    def roles(self) -> dict[str, str]:
        """Participant id -> slot role (buyer wins a clash, see permissions)."""
        out = {}
        if self.sales_rep:
            out[self.sales_rep.id] = "sales_rep"
        out[self.supplier.id] = "supplier"
        out[self.buyer.id] = "buyer"
        return out


class UnreadChange(msgspec.Struct, array_like=True):
    """A user's unread on one order changed. `side`: the marker is a side marker
    (the user holds no slot on the order); `hidden`: the part of `total` on side
    markers, which a token covering no order outside its slots must not count."""

    user: str
    count: int
    total: int
    side: bool = False
    hidden: int = 0


class StaffView(msgspec.Struct):
    """An order's place in the staff queue after a write (chatd.attention): the shared
    staff marker, the shared reasons (every staff member's queue), who follows it (their
    own queue), and its participants (a staff token of theirs is that participant there).
    `moved`: a shared reason came or went, so the order entered or left queues."""

    order: str
    read_seq: int
    unread: int
    reasons: list[str]
    followers: list[str]
    slots: list[str]
    moved: bool = False


class Posted(msgspec.Struct):
    """A message durably stored (or found again for a repeated client_id)."""

    message: Message
    duplicate: bool
    unread: list[UnreadChange]
    order: OrderRecord | None = None  # set when the post changed order state
    waiting_changed: bool = False  # it started or stopped the reply clock (the order's `waiting` now: `waiting`)
    waiting: Waiting | None = None
    staff: StaffView | None = None  # the order is (or was) in a staff queue: staff hear of it


class OrderChange(msgspec.Struct):
    order: OrderRecord
    created: bool
    state_changed: bool  # status, dispute or participants differ
    removed: list[str]  # users whose role changed: access ended, or it is another now
    totals: list[UnreadChange] = []  # those who left the slots: their unread on the order, now 0, and new totals
    posted: Posted | None = None  # the status message, when the upsert changed an order's status
    entered: list[UnreadChange] = []  # those who took a slot (or another one): their unread there, new totals
    queue_moved: list[str] = []  # ids that entered or left its slots while it is in their staff queue
    staff: StaffView | None = None  # ... and the order's place in the staff queues (set with `queue_moved`)


class OrderPlan(msgspec.Struct, frozen=True):
    """What an upsert does to the order's workflow and status, decided (chatd.chat,
    chatd.workflow) against the order as locked in the write."""

    workflow: str
    status: str
    closes_at: int | None
    post: bool = False  # an existing order's status changes: post a status message
    forced: bool = False  # ... outside its workflow (the api key forced it)
    text: str = ""  # ... saying so ("Status changed to <label>"); "": with the status itself


class ReadMarker(msgspec.Struct):
    read_seq: int
    unread: int
    total: int
    role: str = ""  # the reader's role on the order ("" when the api key set it)
    side: bool = False  # see UnreadChange
    hidden: int = 0
    plain_seq: int = 0  # the newest non-note seq up to read_seq: what buyers may learn
    plain_before: int = 0  # the same for the marker before this move
    staff: StaffView | None = None  # a staff read: the shared staff marker moved (not the user's own)


class NotificationRow(msgspec.Struct, frozen=True):
    """A pending notification (chatd.notifier): `user` is to hear of messages
    `first_seq`..`last_seq` of `order`."""

    id: str  # the recipient's de-duplication key (webhook and e-mail alike)
    user: str
    order: str
    role: str  # the recipient's role on the order when it was scheduled
    reason: str  # "messages", "status", "dispute"
    first_seq: int
    last_seq: int
    created_ts: int
    due_ts: int
    attempts: int


class SentCounts(msgspec.Struct, frozen=True):
    """Notifications sent to a user since a moment: in all and on one order, with the oldest."""

    user: int
    user_oldest: int | None
    order: int
    order_oldest: int | None


class NotifyPrefs(msgspec.Struct, frozen=True):
    email: bool = True  # built-in e-mail on (webhooks are the host platform's to filter)
    muted: list[str] = []  # orders nothing is scheduled for


class AttachmentRow(msgspec.Struct, frozen=True):
    """An upload's metadata; the file is named by `sha256`."""

    id: str
    order_id: str
    uploader_id: str
    name: str
    mime: str
    size: int
    sha256: str
    created_ts: int
    linked: bool = False  # some message carries it


class ReplyToken(msgspec.Struct, frozen=True):
    """A reply address's token as stored (chatd.mail.addresses): whose, for which order."""

    id: str
    user_id: str
    order_id: str
    created_ts: int
    revoked_ts: int | None = None  # ms: revoked then (the user left their slot, or by hand)


class OutboxEvent(msgspec.Struct, frozen=True):
    """A webhook event claimed for delivery: `body` is the exact JSON to POST."""

    id: int
    event_id: str
    type: str
    body: bytes
    attempts: int


class OutboxFailure(msgspec.Struct, frozen=True):
    id: int
    attempts: int
    next_ts: int
    error: str
    dead: bool


class ThreadFilter(msgspec.Struct, frozen=True):
    """Which threads a page lists; values already checked by chatd.threads."""

    dispute: str | None = None  # "open", "closed", "none"
    unread_for: str | None = None
    has_messages: str = "true"  # "true", "false", "any"
    words: tuple[str, ...] = ()  # full-text: every word, as a word or (longer than 1) a prefix
    scope_user: str | None = None  # supplier or sales rep slot held by this user
    staff: str | None = None  # leave out orders where this id is the buyer
    status: str | None = None
    awaiting_reply: bool | None = None  # the buyer waits for a reply (True) or not (False)
    overdue: bool = False  # ... and was escalated: an SLA breach of the staff queue
    attention: bool = False  # the staff queue: open dispute, SLA breach, open help request, or followed
    queue_user: str | None = None  # ... as this staff member's (their follows; orders where they hold a slot left out)
    emails: bool = False  # `words` also match participants' e-mails (operators only: never the supplier side)


class ThreadRow(msgspec.Struct):
    order: OrderRecord
    activity: int
    last: Message | None
    unread: int | None = None  # with `unread_for`
    matches: list[Message] | None = None  # with `words`: newest first, at most 10
    match_count: int = 0
    reasons: list[str] | None = None  # with `attention`: why it is in the queue
    staff_unread: int | None = None  # with `attention`: the shared staff marker's count


class ThreadPage(msgspec.Struct):
    rows: list[ThreadRow]
    as_of: int  # the snapshot the cursor carries
    more: bool
