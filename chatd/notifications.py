"""Who is notified of a stored message, and when: pure rules the store runs inside
the message's write (so a notification exists exactly when its message does).

A participant who may see the message, did not send it and has no connection
joined to the order gets one pending notification per order. Later messages
join it. It goes out `delay_s` after the latest message it covers (the
conversation paused), but never later than twice `delay_s` after the first
(someone writing on and on still gets word). A status change notifies the
buyer at once; a dispute opened or closed notifies everyone on the order and
staff at once; an SLA breach or a help request (chatd.attention) notifies staff at
once. Caps and delivery are chatd.notifier's.
"""

from __future__ import annotations

import msgspec

from chatd import attention
from chatd.auth import permissions
from chatd.store.records import OrderRecord
from chatd.wire import Message

STAFF = "staff"  # the recipient id of notifications addressed to the platform's staff as a whole


class Planned(msgspec.Struct, frozen=True):
    """A notification to schedule (or to join, if one is pending for user and order)."""

    user: str
    role: str
    reason: str  # "messages", "status", "dispute"; for staff also "sla", "help"
    due_ts: int  # ms
    latest_due_ts: int  # ms: a pending one is never pushed past this by later messages


class Rules:
    """The scheduling rules, with `[notify] delay_s`."""

    def __init__(self, delay_s: float = 300.0) -> None:
        self.delay_ms = int(delay_s * 1000)

    def plan(self, order: OrderRecord, msg: Message, present: frozenset[str]) -> list[Planned]:
        """The notifications `msg` schedules (called by the store inside its write)."""
        now = msg.ts
        urgent = msg.kind == "dispute"
        out = []
        for p in order.participants():
            if p.id == msg.sender.id or p.id in present:
                continue
            if msg.kind == "note" and not permissions.sees_notes(p.role):
                continue
            at_once = urgent or (msg.kind == "status" and p.role == "buyer")
            reason = "dispute" if urgent else "status" if at_once else "messages"
            due = now if at_once else now + self.delay_ms
            out.append(Planned(p.id, p.role, reason, due, now if at_once else now + 2 * self.delay_ms))
        raised = "dispute" if urgent else attention.raised_by(order, msg)
        if raised is not None:  # a dispute, an SLA breach, a help request: staff hear at once
            out.append(Planned(STAFF, "staff", raised, now, now))
        return out
