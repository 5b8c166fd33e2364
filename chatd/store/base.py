"""The Store contract: what chat, the edges and the feature modules may rely on.

Everything above the store types against `Store` (never a backend class) and
awaits every call: a backend may answer inline (SQLite reads in WAL mode do)
or over the network (a PostgreSQL pool), callers cannot tell. No connection,
cursor or SQL crosses this line; values go in and come out (chatd.store.records,
chatd.store.rows).

Guarantees every backend keeps (tests/contract/test_store_contract.py checks
them against each one):

* A write returns only after its transaction committed: an ack sent after
  `await store.post(...)` means "stored", whatever happens next.
* `seq` is allocated per order inside the write transaction: gapless (1, 2,
  3, ...) and unique, also with several processes writing to one database.
* `(order, sender, client_id)` is stored once: a repeat returns the original
  message with `duplicate: True` and changes nothing.
* Side rows commit with their write or not at all: the attachment links of
  a message, the webhook outbox events of a message or order change
  (`events_for_message`, `events_for_order`), the search index entry (which
  may follow a moment later, but never for a message that did not commit).
* A refusal (permission, conflict, unknown order, an attachment gone) raises
  a ChatError before anything is written; the write leaves no trace.
* Backend trouble surfaces as ChatError too: `unavailable` (closed, cannot
  reach the database) or `internal` (anything unexpected), never a driver
  exception.
* Unread counters are exact: a marker's `unread` is the number of messages
  after it its user may see and did not send; a user's total is the sum.

Feature modules hand the store pure functions or values, never code that
runs against a connection: the outbox event functions below get plain
records and return (kind, payload) pairs; nothing that runs inside a
transaction reaches chat, the hub or the relay. `on_outbox` is called on the
event loop after a commit that wrote outbox events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import EllipsisType
from typing import TYPE_CHECKING, Any, Protocol

from chatd.auth.tokens import Identity
from chatd.store.records import (
    AttachmentRow,
    Contact,
    NotificationRow,
    NotifyPrefs,
    OrderChange,
    OrderPlan,
    OrderRecord,
    OutboxEvent,
    OutboxFailure,
    Person,
    Posted,
    ReadMarker,
    ReplyToken,
    SentCounts,
    StaffView,
    ThreadFilter,
    ThreadPage,
    UnreadChange,
    Waiting,
)
from chatd.store.rows import Actor

if TYPE_CHECKING:
    from chatd.notifications import Planned
from chatd.wire import AttachmentRef, Message

# (order, message, users joined to the order when it was sent) -> [(event type, payload)]
MessageEvents = Callable[[OrderRecord, Message, frozenset[str]], list[tuple[str, dict[str, Any]]]]
# (order before or None, order after) -> [(event type, payload)]
OrderEvents = Callable[[OrderRecord | None, OrderRecord], list[tuple[str, dict[str, Any]]]]
# Rules chat decides (chatd.workflow) and the store runs on the order as locked in
# the write, so the check and the change are one atomic step; each raises ChatError to refuse.
# (order, message, users joined to the order) -> the notifications it schedules (chatd.notifications)
NotifyRule = Callable[[OrderRecord, Message, frozenset[str]], list["Planned"]]
# (order whose buyer waits, now ms) -> the outbox events of an escalation (sla.breached)
BreachEvents = Callable[[OrderRecord, int], list[tuple[str, dict[str, Any]]]]
# (order or None for a new one) -> what an upsert does to its workflow and status
OrderRule = Callable[[OrderRecord | None], OrderPlan]
# (order, the actor's role on it) -> when its chat closes after this status change (None: open)
StatusRule = Callable[[OrderRecord, str], int | None]
# (order, the sender's role on it) -> None, or refuse (a closed chat)
PostRule = Callable[[OrderRecord, str], None]
# (order, the asker's role on it) -> (kind, text) of a help request's message, or refuse
HelpRule = Callable[[OrderRecord, str], tuple[str, str]]
# (order as read before an export's next chunk) -> whether that chunk holds notes, or None:
# the caller's access ended and the export ends there
ExportRule = Callable[[OrderRecord], bool | None]
# an inbox entry: (order id, status, unread, dispute open, last message or None,
# the reasons of a staff queue entry or None)
InboxRow = tuple[str, str, int, bool, Message | None, list[str] | None]


class Orders(Protocol):
    async def get_order(self, order_id: str) -> OrderRecord | None: ...

    async def orders(self, order_ids: Sequence[str]) -> dict[str, OrderRecord]:
        """Those orders that exist, in one read (a page's worth)."""

    async def put_order(
        self,
        order_id: str,
        status: str | None,
        buyer: Person | None,
        supplier: Person | None,
        sales_rep: Person | None | EllipsisType = ...,
        *,
        rule: OrderRule | None = None,
        present: frozenset[str] = frozenset(),
        contacts: Mapping[str, Contact] | None = None,
    ) -> OrderChange:
        """Create or update an order (`sales_rep=...` leaves it). `contacts` (user id ->
        contact data, see Contact) are saved in the same transaction. Participants whose
        role changed lose their marker (`removed`, `totals`); new ones get one.
        `rule` decides workflow, status and close time (None: the status given or
        kept, workflow and close time kept, a new order's workflow `free`); when it
        says `post`, a `status` message from the system is written with the change
        (`posted`; `present` as for `post`). A new order without `sales_rep` gets its
        buyer's rep (`set_buyer_rep`) and follows it; one given `sales_rep` (null
        included) keeps its own from then on."""

    async def set_buyer_rep(
        self, buyer_id: str, sales_rep: Person | None, contacts: Mapping[str, Contact] | None = None
    ) -> list[OrderChange]:
        """Assign the buyer's sales rep (None: none) and, in the same transaction, give
        it to every order of the buyer that follows its buyer's rep, as `put_order`
        with that rep would: one change per such order (ascending id; `removed`,
        `totals` as there). A rep who is the buyer, or the supplier of such an
        order, is refused (`bad_request`) before anything is written."""

    async def buyer_rep(self, buyer_id: str) -> Person | None:
        """The buyer's assigned sales rep, if any."""

    async def contacts(self, user_ids: Sequence[str]) -> dict[str, Contact]:
        """The stored contact data of those users (those without any left out)."""


class Messages(Protocol):
    async def post(
        self,
        actor: Actor,
        order_id: str,
        text: str,
        client_id: str | None,
        kind: str = "text",
        attachments: list[AttachmentRef] | None = None,
        present: frozenset[str] = frozenset(),
        rule: PostRule | None = None,
    ) -> Posted:
        """Store a text/note/system message with the next seq. `attachments` are
        linked in the same transaction; one deleted meanwhile refuses the message
        (`internal`). `present`: who is joined to the order now (outbox events).
        `rule` may refuse it, given the locked order (a repeat is answered first)."""

    async def set_status(
        self,
        actor: Actor,
        order_id: str,
        status: str,
        client_id: str,
        text: str | None,
        present: frozenset[str] = frozenset(),
        rule: StatusRule | None = None,
    ) -> Posted:
        """Change the status and post a `status` message, atomically. `rule` checks the
        transition against the locked order and gives its close time (None: only the
        role check of `permissions.may_set_status`, the close time kept)."""

    async def dispute(
        self,
        actor: Actor,
        order_id: str,
        action: str,
        client_id: str,
        reason: str | None,
        present: frozenset[str] = frozenset(),
    ) -> Posted: ...

    async def sent(self, order_id: str, sender_id: str, client_id: str) -> Message | None:
        """The message stored for `(order, sender, client_id)`, if any: the answer to a
        retry that can no longer be written as it was (its upload was deleted since)."""

    async def history(
        self, order_id: str, sees_notes: bool, before: int | None, after: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """The newest `limit` below `before`, or the oldest `limit` above `after`;
        ascending; and whether more were left out."""

    async def replay(
        self, order_id: str, sees_notes: bool, since: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """After `since` (newest `limit` kept, flag: some left out), or the newest `limit`."""

    def export(self, order_id: str, rule: ExportRule, upto: int, chunk: int = 500) -> AsyncIterator[list[Message]]:
        """The messages up to seq `upto` in ascending chunks, never all in memory. Before
        each chunk the order is read as it is then and `rule` decides from it whether the
        chunk holds notes, or ends the export (None; a missing order ends it too): what a
        slow reader gets follows its access, not the access it had when it started."""


class Markers(Protocol):
    async def mark_read(
        self, actor: Actor | None, order_id: str, user_id: str, seq: int, backward: bool = False
    ) -> ReadMarker | None: ...

    async def marker(self, order_id: str, user_id: str, sees_notes: bool, last_seq: int) -> tuple[int, int, int]:
        """(read_seq, unread, newest seq the user may see)."""

    async def receipts(self, order_id: str, user_id: str, sees_notes: bool) -> list[tuple[str, int]]:
        """The other participants' read markers on the order, as (user, seq) with seq > 0, as
        `receipt` frames carry them: for a reader who does not see notes, the newest
        non-note message up to each marker."""

    async def readers(self, order_id: str) -> list[tuple[UnreadChange, bool]]:
        """Every marker on the order as an `unread` frame tells it (its count and its
        user's totals), with whether its user sees notes, in one read: messages that
        came without their pub/sub events are recounted per order, not per user."""

    async def total_unread(self, user_id: str) -> int: ...

    async def visible_total(self, ident: Identity) -> int:
        """The unread total over the orders this identity's token covers; for a staff
        token, its own orders as a participant and its attention queue (`Attention`)."""

    async def inbox(
        self, ident: Identity, limit: int, cursor: str | None, only: Sequence[str] | None = None
    ) -> tuple[list[InboxRow], int, str | None]:
        """(entries, visible total, next cursor); newest activity first. A staff token's
        are its orders as a participant and its attention queue (with reasons). With
        `only`, the entries are of those orders alone (the total is still all of them)."""


class Attention(Protocol):
    """The staff attention queue (chatd.attention). Staff share one read marker per
    order: `mark_read` by a staff member (their role on the order) moves it, a staff
    message moves it as sending moves anyone's, and every message write reports the
    order's place in the queues (`Posted.staff`). An order is in every staff member's
    queue while it has an open dispute, an SLA breach or an open help request, and in
    a staff member's own while they follow it; never where their id holds a slot."""

    async def staff_marker(self, order_id: str) -> tuple[int, int]:
        """(read_seq, unread) of the shared staff marker (without one: where it would
        start, at the newest message staff sent)."""

    async def following(self, user_id: str, order_id: str) -> bool: ...

    async def request_help(
        self, actor: Actor, order_id: str, client_id: str, present: frozenset[str], rule: HelpRule
    ) -> Posted:
        """Post a participant's help request (`rule` gives kind and text for their role,
        or refuses) and open the order's (or renew an open one), atomically. A repeated
        client_id answers the first (`duplicate`) before the rule runs. A staff member's
        later text or note on the order closes it (`Posted.staff.moved`)."""

    async def resolve_help(self, actor: Actor, order_id: str) -> StaffView:
        """Staff close the open help request without a message (`conflict`: none open;
        `forbidden`: not staff on the order)."""

    async def follow(self, actor: Actor, order_id: str, on: bool) -> tuple[bool, StaffView]:
        """A staff member follows the order (or no longer does): (changed, place now)."""

    async def mark_staff_read(
        self, order_ids: list[str], seq: int | None, unread: bool, viewer: str | None
    ) -> list[tuple[StaffView, bool]]:
        """Move many shared staff markers in one transaction, in the order given: read
        (forward to `seq`, clamped; None: the newest message), or `unread` (back to just
        before the newest message not sent as staff). `viewer`: the staff token's id, which
        may hold no slot on any of them (`forbidden`); a missing order: `not_found`;
        nothing written either way. [(place now, moved)]."""


class Replies(Protocol):
    """The reply clock (chatd.responses): every message write starts or stops it in
    its own transaction (`Posted.waiting_changed`); these act on it directly."""

    async def dismiss_wait(self, actor: Actor, order_id: str, seq: int) -> tuple[bool, Waiting | None]:
        """The buyer's message `seq` needs no reply (the supplier side or staff says):
        a waiting period started at or before it ends and leaves the report; the
        first later buyer message that asks starts the next one. `bad_request` unless
        `seq` is a buyer's message. (changed, the order's waiting now)."""

    async def overdue(self, waiting_since_before: int, limit: int) -> list[tuple[str, int]]:
        """(order id, seq its buyer waits since) of the orders not escalated yet whose
        buyer has waited since before the cutoff (ms), longest first."""

    async def escalate(
        self,
        order_id: str,
        seq: int,
        now_ms: int,
        text: str,
        events: BreachEvents | None = None,
        present: frozenset[str] = frozenset(),
    ) -> Posted | None:
        """Escalate the waiting period that started at `seq`, once: flag it, post `text`
        as a system note and write `events` to the outbox, atomically. None if it was
        answered, dismissed or escalated meanwhile (by any instance). `present`: who is
        joined to the order now, whom the note's notifications and events leave out."""

    async def response_periods(
        self, since_ms: int, supplier: str | None, sales_rep: str | None
    ) -> list[tuple[int, int | None]]:
        """(asked at, answered at or None), ms, of the waiting periods started since
        `since_ms` on orders of that supplier and/or sales rep when each started."""


class NotificationStore(Protocol):
    """Notifications (chatd.notifications schedules them in each message's write with
    `notifications_for`; a read takes what it covers out): claimed with a lease, then
    settled with their webhook event in one transaction, or postponed."""

    notifications_for: NotifyRule | None

    async def claim_notifications(self, now_ms: int, lease_until_ms: int, limit: int) -> list[NotificationRow]:
        """Due pending notifications, leased until `lease_until_ms` (other instances leave them)."""

    async def sent_counts(self, user_id: str, order_id: str, since_ms: int) -> SentCounts: ...

    async def postpone_notification(self, notification_id: str, due_ts: int, failed: bool = False) -> None:
        """Due again at `due_ts`, lease released (`failed`: one more attempt counted)."""

    async def finish_notification(
        self, notification_id: str, sent_ts: int, last_seq: int, events: list[tuple[str, dict[str, Any]]]
    ) -> bool:
        """Sent, covering up to `last_seq` (later messages stay pending in a new one), and
        `events` written to the outbox, atomically. False if it was read (gone) meanwhile."""

    async def notify_prefs(self, user_id: str) -> NotifyPrefs: ...

    async def set_notify_prefs(self, user_id: str, prefs: NotifyPrefs) -> None:
        """Replace the user's preferences; a muted order's pending notification goes."""

    async def prune_notifications(self, sent_before_ms: int) -> int:
        """Forget notifications sent before the cutoff (the caps look back one day)."""

    async def pending_notifications(self, user_id: str) -> list[NotificationRow]: ...

    async def notification_backlog(self, now_ms: int) -> tuple[int, int]:
        """(notifications pending, of which due by `now_ms`): the metrics' backlog."""


class AttachmentStore(Protocol):
    """Attachment metadata rows (the files themselves are the attachments module's)."""

    async def add_attachment(self, row: AttachmentRow) -> None: ...

    async def delete_attachment(self, att_id: str) -> None: ...

    async def attachment(self, att_id: str) -> AttachmentRow | None: ...

    async def attachment_links(self, att_id: str) -> list[tuple[str, str]]:
        """(order id, message kind) of each message carrying it."""

    async def delete_unreferenced(self, created_before_ms: int, limit: int = 1000) -> tuple[int, list[str]]:
        """Delete uploads no message carries, created before the cutoff:
        (how many, the sha256 no row refers to any more)."""

    async def delete_expired(self, closed_before_ms: int, limit: int = 1000) -> tuple[int, list[str]]:
        """Retention: delete the uploads of orders whose chat closed before the cutoff
        and that have no open dispute, with their message links (the messages keep
        the metadata): (how many, the sha256 no row refers to any more)."""

    async def sha256_in_use(self, sha256: str) -> bool: ...


class ReplyTokens(Protocol):
    """The tokens of reply-by-e-mail addresses (chatd.mail.addresses): one live token
    per user and order. `put_order` and `set_buyer_rep` revoke, in their own write,
    the live tokens of every user in `removed` (they left their slot, or changed it)."""

    async def mint_reply_token(self, user_id: str, order_id: str, new_id: str) -> str | None:
        """The user's live token on the order, made with `new_id` if they have none;
        None if there is no such order or the user holds no slot on it (checked in the
        same write, so a token is never made for someone an order change just removed)."""

    async def reply_token(self, token_id: str) -> ReplyToken | None:
        """The token with this id, live or revoked; None if there is none."""

    async def revoke_reply_tokens(self, order_id: str, user_ids: list[str]) -> int:
        """Revoke these users' live tokens on the order; how many were live."""


class OutboxStore(Protocol):
    """The webhook outbox: events are written by the store with the change they
    announce (`events_for_*`); delivery claims, then settles them."""

    events_for_message: MessageEvents | None
    events_for_order: OrderEvents | None
    on_outbox: Callable[[], None] | None

    async def claim_events(self, now_ms: int, lease_until_ms: int, limit: int) -> list[OutboxEvent]:
        """Due events, leased until `lease_until_ms` (another instance leaves them alone)."""

    async def settle_events(self, delivered: list[int], failed: list[OutboxFailure]) -> None: ...

    async def next_event_ts(self) -> int | None:
        """When the earliest live event is due, or None if there is none."""

    async def outbox_counts(self) -> tuple[int, int]:
        """(events waiting, events given up on)."""


class ThreadSearch(Protocol):
    """The admin threads list and its full-text search."""

    async def index_search(self) -> None:
        """Bring the search index up to every message committed before the call."""

    async def thread_page(self, filters: ThreadFilter, after: tuple[int, int, str] | None, limit: int) -> ThreadPage:
        """Threads newest activity first, as of a snapshot: `after` is (snapshot,
        activity, order id) of the previous page's last thread."""


class Store(
    Orders,
    Messages,
    Markers,
    Attention,
    Replies,
    NotificationStore,
    ReplyTokens,
    AttachmentStore,
    OutboxStore,
    ThreadSearch,
    Protocol,
):
    """The whole contract, as one object: what the composition root builds."""

    on_batch: Callable[[int, float], None] | None  # (writes, seconds) per commit, for metrics

    async def open(self) -> None: ...

    async def aclose(self) -> None:
        """Flush every queued write, then close. Idempotent."""

    async def check_writable(self) -> None:
        """A write that commits, or `unavailable`/`internal`."""
