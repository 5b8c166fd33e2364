"""chatd.notifications: whom a stored message notifies, and when."""

from __future__ import annotations

from chatd.notifications import STAFF, Rules
from chatd.store.records import OrderRecord, Person
from chatd.wire import DisputeState, Message, UserRef

ORDER = OrderRecord(
    "o1", "open", Person("b", "B"), Person("s", "S"), Person("r", "R"), None, last_seq=0, last_ts=0, created_ts=0
)


def msg(kind: str, sender: str = "s", role: str = "supplier", ts: int = 1000) -> Message:
    return Message("o1", 1, ts, kind, UserRef(sender, sender.upper(), role), "hi", "c1", [])


def plan(m: Message, present: frozenset[str] = frozenset(), order: OrderRecord = ORDER) -> dict:
    return {(p.user, p.reason): (p.role, p.due_ts, p.latest_due_ts) for p in Rules(60).plan(order, m, present)}


def test_everyone_else_not_joined_is_told_after_the_delay():
    assert plan(msg("text")) == {
        ("b", "messages"): ("buyer", 61_000, 121_000),
        ("r", "messages"): ("sales_rep", 61_000, 121_000),
    }
    assert plan(msg("text"), frozenset({"b"})) == {("r", "messages"): ("sales_rep", 61_000, 121_000)}
    assert set(plan(msg("text", "b", "buyer"))) == {("s", "messages"), ("r", "messages")}


def test_notes_never_reach_the_buyer():
    assert set(plan(msg("note", "r", "sales_rep"))) == {("s", "messages")}


def test_a_status_change_tells_the_buyer_at_once_and_the_rest_later():
    got = plan(msg("status", "system", "bot"))
    assert got[("b", "status")] == ("buyer", 1000, 1000)
    assert got[("s", "messages")][1] == 61_000


def test_a_dispute_tells_everyone_and_staff_at_once():
    order = OrderRecord(
        **{
            **{f: getattr(ORDER, f) for f in ORDER.__struct_fields__},
            "dispute": DisputeState(True, None, "b", 1, "Bea"),
        }
    )
    got = plan(msg("dispute", "b", "buyer"), order=order)
    assert got == {
        ("s", "dispute"): ("supplier", 1000, 1000),
        ("r", "dispute"): ("sales_rep", 1000, 1000),
        (STAFF, "dispute"): ("staff", 1000, 1000),
    }
