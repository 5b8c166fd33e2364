"""The staff attention queue's rules: why an order needs the platform, what a help
request posts and what answers it. Pure functions of plain values.

An order is in *every* staff member's queue while it has an open dispute, an SLA
breach (the buyer's wait escalated, chatd.sla) or an open help request (the
shared reasons), and in the queue of each staff member who follows it. Staff
share one read state per order: the shared staff marker (kept by each store's
`attention` module), moved by any staff member's read and by their messages.
A staff token whose id holds a participant slot on an order is that participant
there, never staff: the order is not in that id's queue.

The hook for notifications addressed to staff: every message write passes the
order as the write left it to the store's `notifications_for` rule, and
`raised_by(order, message)` names the reason that message brought the order into
the queue (a dispute opened, an SLA breach, a help request); `shared_reasons`
says whether a message lands on an order in the queue at all.
"""

from __future__ import annotations

from chatd.auth import permissions
from chatd.store.records import OrderRecord
from chatd.wire import Message

DISPUTE, SLA, HELP, FOLLOWED = "dispute", "sla", "help", "followed"
REASONS = (DISPUTE, SLA, HELP, FOLLOWED)  # the order `reasons` are listed in
MAX_BULK = 200  # orders one POST /api/v1/threads/read may name
SLA_CLIENT_ID = "sla:"  # the client_id prefix of an escalation's note (chatd.store.*.responses)


def shared_reasons(order: OrderRecord) -> list[str]:
    """Why the order is in every staff member's queue (empty: it is not)."""
    out = []
    if order.dispute is not None and order.dispute.open:
        out.append(DISPUTE)
    if order.waiting is not None and order.waiting.escalated:
        out.append(SLA)
    if order.help is not None:
        out.append(HELP)
    return out


def reasons_for(shared: list[str], followed: bool) -> list[str]:
    """One staff member's reasons: the shared ones, and whether they follow it."""
    return [*shared, FOLLOWED] if followed else list(shared)


def help_kind(role: str) -> str:
    """The kind of a help request's message. A buyer asks openly (`system`: there is no
    channel between buyer and staff alone, and the supplier side should know the
    platform was called in, as with a dispute); the supplier side asks privately (a
    `note`: it may be about the buyer, who never sees it)."""
    return "note" if permissions.sees_notes(role) else "system"


def help_text(text: str | None) -> str:
    text = (text or "").strip()
    return f"Help requested: {text}" if text else "Help requested"


def answers_help(msg: Message) -> bool:
    """A staff member's chat message (text or note) answers an open help request."""
    return msg.sender.role == permissions.QUEUE_ROLE and msg.kind in ("text", "note")


def raised_by(order: OrderRecord, msg: Message) -> str | None:
    """The reason `msg` (just written, `order` as the write left it) brought the order
    into the staff queue: `dispute` (opened), `sla` (the escalation's note), `help`
    (a help request, the first or a later one while it is open); None for any other."""
    if msg.kind == "dispute" and order.dispute is not None and order.dispute.open:
        return DISPUTE  # while one is open, the only dispute message is the one that opened it
    if msg.kind == "note" and msg.sender.id == "system" and (msg.client_id or "").startswith(SLA_CLIENT_ID):
        return SLA
    if order.help is not None and order.help.seq == msg.seq:
        return HELP
    return None
