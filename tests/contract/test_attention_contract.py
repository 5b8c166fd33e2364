"""The staff attention queue's part of the Store contract (chatd.store.base.Attention)
and the threads search over order ids, names and e-mails, on every backend.

Fixtures come from test_store_contract.py: each test runs once per backend over a
real database (SQLite, PostgreSQL).
"""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from chatd.errors import Conflict, Forbidden, NotFound
from chatd.store.base import Store
from chatd.store.records import Contact, Person, ThreadFilter
from chatd.store.rows import Actor
from tests.contract import test_store_contract as contract
from tests.contract.stores import BUYER, REP, SUPPLIER, put_order

# the contract suite's fixtures: every backend, a database per test, more stores over it
store_backend, store_where, store_factory, store = (
    contract.store_backend,
    contract.store_where,
    contract.store_factory,
    contract.store,
)

STAFF1 = Actor("st1", "Staff One", "staff")
STAFF2 = Actor("st2", "Staff Two", "staff")


class _Ident(msgspec.Struct, frozen=True):
    id: str
    role: str
    orders: object = None


def _staff(actor: Actor) -> _Ident:
    return _Ident(actor.id, "staff")


def _help(kind: str, text: str):
    def rule(order, role):
        return kind, text

    return rule


async def _queue(db: Store, actor: Actor) -> dict[str, tuple[int, list[str] | None]]:
    entries, _, _ = await db.inbox(_staff(actor), 50, None)
    return {e[0]: (e[2], e[5]) for e in entries}


# --- one shared staff marker --------------------------------------------------------------


async def test_staff_share_one_marker_that_reads_and_staff_messages_move(store, store_factory):
    await put_order(store, "o1")
    await store.post(BUYER, "o1", "hello", "c1")
    opened = await store.dispute(BUYER, "o1", "open", "d1", "broken")
    assert opened.staff is not None and opened.staff.moved and opened.staff.reasons == ["dispute"]
    assert (opened.staff.read_seq, opened.staff.unread) == (0, 2)
    await store.post(REP, "o1", "internal", "n1", "note")  # staff see notes: counted
    other = await store_factory()
    assert await other.staff_marker("o1") == (0, 3)
    # one staff member reads: the marker is everyone's
    marker = await store.mark_read(STAFF1, "o1", STAFF1.id, 2)
    assert marker.role == "staff" and (marker.read_seq, marker.unread) == (2, 1)
    assert marker.staff is not None and (marker.staff.read_seq, marker.staff.unread) == (2, 1)
    assert await store.mark_read(STAFF2, "o1", STAFF2.id, 1) is None  # never backward by `read`
    assert await other.staff_marker("o1") == (2, 1)
    assert await _queue(other, STAFF2) == {"o1": (1, ["dispute"])}
    assert await other.visible_total(_staff(STAFF2)) == 1 == await other.visible_total(_staff(STAFF1))
    entries, total, _ = await other.inbox(_staff(STAFF2), 10, None)
    plain = (marker.staff.read_seq, marker.staff.unread, total, entries[0][2], *(await other.staff_marker("o1")))
    assert all(type(v) is int for v in plain), plain  # JSON numbers on the wire, from every driver
    # a staff message reads the order for staff; a participant's counts again
    posted = await other.post(STAFF2, "o1", "looking into it", "s1")
    assert (posted.staff.read_seq, posted.staff.unread) == (4, 0)
    posted = await store.post(SUPPLIER, "o1", "sorry", "c2")
    assert (posted.staff.read_seq, posted.staff.unread) == (4, 1)
    # no per-user staff marker was made, and the participants' counts are their own
    assert await store.total_unread(STAFF1.id) == 0
    assert (await store.marker("o1", BUYER.id, False, 5))[:2] == (2, 2)  # since their dispute; not the note


async def test_an_order_nobody_queued_reports_nothing_to_staff(store):
    await put_order(store, "o1")
    assert (await store.post(SUPPLIER, "o1", "hi", "c1")).staff is None
    assert await store.staff_marker("o1") == (0, 1)  # where it would start
    await store.post(STAFF1, "o1", "staff here", "c2")
    await store.post(BUYER, "o1", "thanks", "c3")
    assert await store.staff_marker("o1") == (2, 1)  # from the newest staff message
    assert await _queue(store, STAFF1) == {} and await store.visible_total(_staff(STAFF1)) == 0


# --- what puts an order in the queue, and takes it out --------------------------------------


async def test_help_requests_open_renew_and_close(store, store_factory):
    await put_order(store, "o1")
    asked = await store.request_help(BUYER, "o1", "h1", frozenset(), _help("system", "Help requested: late"))
    m = asked.message
    assert (m.kind, m.sender.id, m.text, m.seq) == ("system", BUYER.id, "Help requested: late", 1)
    assert asked.staff.moved and asked.staff.reasons == ["help"]
    order = await store.get_order("o1")
    assert (order.help.by, order.help.seq) == (BUYER.id, 1)
    again = await store.request_help(BUYER, "o1", "h1", frozenset(), _help("system", "ignored"))
    assert again.duplicate and again.message == m  # the retry key, before the rule
    renewed = await store.request_help(SUPPLIER, "o1", "h2", frozenset(), _help("note", "Help requested"))
    assert not renewed.staff.moved and (await store.get_order("o1")).help.seq == 2  # still open: renewed

    def refuse(order, role):
        raise Forbidden("no")

    with pytest.raises(Forbidden):
        await store.request_help(REP, "o1", "h3", frozenset(), refuse)
    assert (await store.get_order("o1")).last_seq == 2
    # a staff note answers it (a status change does not)
    await store.set_status(STAFF1, "o1", "shipped", "st1", None)
    assert (await store.get_order("o1")).help is not None
    answered = await store.post(STAFF1, "o1", "on it", "n1", "note")
    assert answered.staff.moved and answered.staff.reasons == [] and (await store.get_order("o1")).help is None
    # ... or staff resolve it without a message; twice is a conflict
    await store.request_help(BUYER, "o1", "h4", frozenset(), _help("system", "Help requested"))
    other = await store_factory()
    with pytest.raises(Forbidden):
        await other.resolve_help(SUPPLIER, "o1")
    view = await other.resolve_help(STAFF2, "o1")
    assert view.moved and view.reasons == [] and (await store.get_order("o1")).help is None
    with pytest.raises(Conflict):
        await store.resolve_help(STAFF1, "o1")


async def test_disputes_and_sla_breaches_queue_an_order_and_answers_take_it_out(store):
    await put_order(store, "o1")
    await put_order(store, "o2")
    asked = await store.post(BUYER, "o2", "Where is it?", "q1")
    due = await store.overdue(asked.message.ts + 1, 10)
    assert due == [("o2", 1)]
    breach = await store.escalate("o2", 1, asked.message.ts + 1, "Reply overdue", None)
    assert breach.staff.moved and breach.staff.reasons == ["sla"] and breach.staff.unread == 2
    await store.dispute(BUYER, "o1", "open", "d1", None)
    assert await _queue(store, STAFF1) == {"o1": (1, ["dispute"]), "o2": (2, ["sla"])}
    answer = await store.post(SUPPLIER, "o2", "Tomorrow", "a1")
    assert answer.staff.moved and answer.staff.reasons == []
    closed = await store.dispute(STAFF1, "o1", "close", "d2", None)
    assert closed.staff.moved and closed.staff.reasons == []
    assert await _queue(store, STAFF1) == {} and await store.visible_total(_staff(STAFF1)) == 0


async def test_follows_are_each_staff_members_own(store, store_factory):
    await put_order(store, "o1")
    await store.post(SUPPLIER, "o1", "hi", "c1")
    changed, view = await store.follow(STAFF1, "o1", True)
    assert changed and view.followers == [STAFF1.id] and view.reasons == [] and view.unread == 1
    assert (await store.follow(STAFF1, "o1", True))[0] is False
    other = await store_factory()
    assert await other.following(STAFF1.id, "o1") and not await other.following(STAFF2.id, "o1")
    assert await _queue(other, STAFF1) == {"o1": (1, ["followed"])} and await _queue(other, STAFF2) == {}
    assert await other.visible_total(_staff(STAFF1)) == 1 and await other.visible_total(_staff(STAFF2)) == 0
    posted = await store.post(BUYER, "o1", "hello", "c2")
    assert posted.staff.followers == [STAFF1.id] and posted.staff.unread == 2
    for who in (BUYER, SUPPLIER):
        with pytest.raises(Forbidden):
            await store.follow(who, "o1", True)
    with pytest.raises(NotFound):
        await store.follow(Actor("s9", "Other", "supplier"), "o1", True)
    assert (await other.follow(STAFF1, "o1", False))[0] is True
    assert await _queue(store, STAFF1) == {}


async def test_a_batch_reports_the_staff_view_as_each_write_left_it(store):
    """On PostgreSQL a batch reads its orders' staff markers and followers once
    (chatd.store.postgres.batch): each message still reports them as its write left them."""
    await put_order(store, "o1")
    await store.post(SUPPLIER, "o1", "hi", "c1")
    await store.follow(STAFF1, "o1", True)
    before = store.batches  # type: ignore[attr-defined]
    one, two, (_, followed), three = await asyncio.gather(
        store.post(BUYER, "o1", "one", "c2"),
        store.post(SUPPLIER, "o1", "two", "c3"),
        store.follow(STAFF2, "o1", True),
        store.post(BUYER, "o1", "three", "c4"),
    )
    assert store.batches == before + 1  # type: ignore[attr-defined]  # else this shows nothing
    assert [(v.unread, sorted(v.followers)) for v in (one.staff, two.staff, followed, three.staff)] == [
        (2, [STAFF1.id]),
        (3, [STAFF1.id]),
        (3, [STAFF1.id, STAFF2.id]),
        (4, [STAFF1.id, STAFF2.id]),
    ]


async def test_a_staff_token_holding_a_slot_is_that_participant_there(store):
    await put_order(store, "o1")
    await store.put_order("o2", None, Person("b2", "B2"), Person(STAFF1.id, "Staff as supplier"), None)
    await store.dispute(BUYER, "o1", "open", "d1", None)
    await store.dispute(Actor("b2", "B2", "buyer"), "o2", "open", "d2", None)
    await store.follow(STAFF2, "o2", True)
    # st1 supplies o2: it is their order as a participant, not a queue entry
    assert await _queue(store, STAFF1) == {"o1": (1, ["dispute"]), "o2": (1, None)}
    assert await store.visible_total(_staff(STAFF1)) == 2
    marker = await store.mark_read(STAFF1, "o2", STAFF1.id, 1)  # their own marker moves, not staff's
    assert marker.role == "supplier" and marker.staff is None
    assert await store.staff_marker("o2") == (0, 1)
    assert await _queue(store, STAFF2) == {"o1": (1, ["dispute"]), "o2": (1, ["dispute", "followed"])}
    with pytest.raises(Forbidden):
        await store.follow(STAFF1, "o2", True)
    with pytest.raises(Forbidden):
        await store.mark_staff_read(["o1", "o2"], None, False, STAFF1.id)
    assert await store.staff_marker("o1") == (0, 1)  # refused as a whole


async def test_the_queue_pages_with_participant_orders_newest_first(store):
    ticks = iter(range(1_800_000_000, 1_900_000_000))
    store.clock = lambda: float(next(ticks))  # a second a message: no two share an activity
    await store.put_order("p1", None, Person(STAFF1.id, "Staff as buyer"), Person("s1", "S"), None)
    for i in range(5):
        await put_order(store, f"o{i}")
        await store.dispute(BUYER, f"o{i}", "open", f"d{i}", None)
        if i == 2:
            await store.post(SUPPLIER, "p1", "to the staff member as buyer", "p")
    seen: list[str] = []
    cursor = None
    while True:
        entries, total, cursor = await store.inbox(_staff(STAFF1), 2, cursor)
        seen += [e[0] for e in entries]
        if cursor is None:
            break
    assert seen == ["o4", "o3", "p1", "o2", "o1", "o0"] and total == 6

    # only some orders (a page's badges): of the queue and of the participant orders alike
    entries, total, cursor = await store.inbox(_staff(STAFF1), 10, None, ["o0", "p1", "o9", "o3"])
    assert [e[0] for e in entries] == ["o3", "p1", "o0"] and total == 6 and cursor is None
    entries, _, cursor = await store.inbox(_staff(STAFF1), 1, None, ["o0", "o3"])
    assert [e[0] for e in entries] == ["o3"]
    entries, _, cursor = await store.inbox(_staff(STAFF1), 1, cursor, ["o0", "o3"])
    assert [e[0] for e in entries] == ["o0"] and cursor is None


# --- many threads at once --------------------------------------------------------------------


async def test_many_threads_are_marked_read_or_unread_at_once(store, store_factory):
    for o in ("o1", "o2", "o3"):
        await put_order(store, o)
        await store.post(BUYER, o, "one", "c1")
        await store.post(SUPPLIER, o, "two", "c2")
        await store.post(STAFF1, o, "staff", "c3")  # read for staff up to 3
        await store.post(BUYER, o, "four", "c4")
    done = await store.mark_staff_read(["o2", "o1"], None, False, STAFF1.id)
    assert [(v.order, v.read_seq, v.unread, moved) for v, moved in done] == [("o2", 4, 0, True), ("o1", 4, 0, True)]
    assert (await store.mark_staff_read(["o1"], None, False, None))[0][1] is False  # nothing to move
    other = await store_factory()
    done = await other.mark_staff_read(["o1", "o3"], None, True, None)  # unread: the newest not from staff
    assert [(v.read_seq, v.unread, moved) for v, moved in done] == [(3, 1, True), (3, 1, False)]  # o3 was
    done = await other.mark_staff_read(["o3"], None, True, None)  # already unread: stays
    assert [(v.read_seq, v.unread, moved) for v, moved in done] == [(3, 1, False)]
    done = await store.mark_staff_read(["o1", "o2"], 2, False, None)  # read up to 2: never backward
    assert [(v.read_seq, moved) for v, moved in done] == [(3, False), (4, False)]
    done = await store.mark_staff_read(["o3"], 99, False, None)  # clamped to the newest
    assert [(v.read_seq, v.unread) for v, _ in done] == [(4, 0)]
    with pytest.raises(NotFound):
        await store.mark_staff_read(["o1", "nope"], None, True, None)
    assert await store.staff_marker("o1") == (3, 1)  # nothing written


# --- search: order ids, names, e-mails --------------------------------------------------------


async def test_search_finds_threads_by_order_id_name_and_e_mail(store, store_factory):
    await store.put_order(
        "PO-1001",
        None,
        Person("b1", "Zoë Müller"),
        Person("s1", "Berg Tools GmbH"),
        None,
        contacts={"b1": Contact(email="zoe.mueller@example.com"), "s1": Contact(email="sales@berg.example")},
    )
    await store.put_order("PO-2002", None, Person("b2", "Ana Buyer"), Person("s2", "Other Shop"), None)
    await store.post(Actor("b2", "Ana Buyer", "buyer"), "PO-2002", "about order 1001 of my friend", "c1")
    other = await store_factory()
    await other.index_search()

    async def found(*words: str, emails: bool = True, scope: str | None = None) -> list[str]:
        page = await other.thread_page(
            ThreadFilter(words=words, emails=emails, scope_user=scope, has_messages="any"), None, 10
        )
        return sorted(r.order.id for r in page.rows)

    assert await found("zoe") == ["PO-1001"]  # a name, diacritics folded
    assert await found("mull") == ["PO-1001"]  # as a prefix
    assert await found("berg", "tools") == ["PO-1001"]
    assert await found("PO", "1001") == ["PO-1001"]  # the order id, split as a search splits it
    assert await found("1001") == ["PO-1001", "PO-2002"]  # the id, or a message
    assert await found("zoe", "mueller", "example", "com") == ["PO-1001"]  # an e-mail, by its words
    assert await found("sales", "berg", "example") == ["PO-1001"]
    assert await found("zoe", "mueller", "example", emails=False) == []  # names match, the e-mail does not
    assert await found("zoe", "ana") == []  # every word in one place
    # a later name or e-mail replaces the earlier one
    await store.put_order(
        "PO-1001", None, Person("b1", "Zoe Schmidt"), None, contacts={"b1": Contact(email="z@new.example")}
    )
    assert await found("muller") == [] and await found("schmidt") == ["PO-1001"]
    assert await found("mueller") == [] and await found("new", "example") == ["PO-1001"]
    await store.put_order("PO-1001", None, None, None, contacts={"b1": Contact(email="")})
    assert await found("new", "example") == []
