"""Row shapes: the columns chatd reads and how a row becomes a record, plus
who writes (`Actor`). Shared by the store and the feature modules that query it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import msgspec

from chatd.auth import permissions
from chatd.errors import NotFound
from chatd.store.records import HelpState, OrderRecord, Person, Waiting
from chatd.wire import AttachmentRef, DisputeState, Message, UserRef

ORDER_COLS = (
    "id, status, buyer_id, buyer_name, supplier_id, supplier_name, rep_id, rep_name, "
    "dispute_open, dispute_reason, dispute_by, dispute_ts, last_seq, last_ts, created_ts, workflow, closes_at, "
    "awaiting_seq, awaiting_since, sla_escalated, buyer_avatar, supplier_avatar, rep_avatar, "
    "help_by, help_ts, help_seq, dispute_by_name"
)
MSG_COLS = "seq, ts, kind, sender_id, sender_name, sender_role, client_id, text, status, attachments, forced"
_attachments_decoder = msgspec.json.Decoder(list[AttachmentRef])


def now_ms() -> int:
    return int(time.time() * 1000)


def order_from_row(row: Sequence[Any]) -> OrderRecord:
    dispute = None
    if row[11] is not None:
        dispute = DisputeState(open=bool(row[8]), reason=row[9], by=row[10], ts=row[11], by_name=row[26] or row[10])
    return OrderRecord(
        id=row[0],
        status=row[1],
        buyer=Person(row[2], row[3], row[20]),
        supplier=Person(row[4], row[5], row[21]),
        sales_rep=Person(row[6], row[7], row[22]) if row[6] is not None else None,
        dispute=dispute,
        last_seq=row[12],
        last_ts=row[13],
        created_ts=row[14],
        workflow=row[15],
        closes_at=row[16],
        waiting=Waiting(row[17], row[18], bool(row[19])) if row[17] is not None else None,
        help=HelpState(row[23], row[24], row[25]) if row[24] is not None else None,
    )


def message_from_row(order: str, row: Sequence[Any]) -> Message:
    return Message(
        order=order,
        seq=row[0],
        ts=row[1],
        kind=row[2],
        sender=UserRef(row[3], row[4], row[5]),
        text=row[7],
        client_id=row[6],
        attachments=_attachments_decoder.decode(row[9]) if row[9] else [],
        status=row[8],
        forced=bool(row[10]),
    )


class Actor(msgspec.Struct, frozen=True):
    """Who is writing: a verified identity, or the system (REST api key)."""

    id: str
    name: str
    role: str  # token role; "system" for the api key
    orders: Any = None  # a bot's claim
    slot_name: str = ""  # the name from a participant's slot (chatd.auth.tokens.Identity); "": `name`

    def name_as(self, role: str) -> str:
        """The name shown for what this actor writes in `role` (the role on the order): a staff
        or bot token in a buyer's or supplier's slot crosses the contact line as they would."""
        return self.slot_name if self.slot_name and role in permissions.CONTACT_FILTERED else self.name

    def role_in(self, order: OrderRecord) -> str:
        """The role this actor has on `order`; `NotFound` if none."""
        if self.role == "system":
            return "bot"
        role = permissions.order_role(self.id, self.role, self.orders, order.id, order.slots)
        if role is None:
            raise NotFound("no such order", ref=order.id)
        return role


SYSTEM = Actor("system", "System", "system")  # who writes with the api key (REST)
