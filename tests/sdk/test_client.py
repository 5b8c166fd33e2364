"""The SDK's requests, events and typed errors against a real chatd process."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from chatd import client, wire
from tests.sdk.waits import messages, next_event
from tests.support.client import token

BOT = {"orders": "*"}


@contextlib.asynccontextmanager
async def _buyer_and_supplier(chatd_proc, **supplier_kw):
    """buyer1 and supplier1, each connected (`supplier_kw`: the supplier's client options)."""
    async with (
        client.connect(chatd_proc.base, token("buyer1", "buyer")) as buyer,
        client.connect(chatd_proc.base, token("supplier1", "supplier"), **supplier_kw) as supplier,
    ):
        yield buyer, supplier


async def test_send_returns_the_ack_and_joined_clients_get_each_message_once(chatd_proc, api):
    order = await api.order()
    async with (
        client.connect(chatd_proc.base, token("buyer1", "buyer")) as buyer,
        client.connect(chatd_proc.ws_url, token("bot1", "bot", **BOT)) as bot,
    ):
        joined = await buyer.join(order)
        assert joined.order == order and joined.last_seq == 0 and joined.status == "open"
        assert buyer.user == wire.UserRef("buyer1", "Buyer1", "buyer")
        acks = [await bot.send(order, f"m{i}") for i in range(3)]
        assert [a.seq for a in acks] == [1, 2, 3] and not any(a.duplicate for a in acks)
        got = await messages(buyer, 3)
        assert [(m.seq, m.text, m.sender.id) for m in got] == [(1, "m0", "bot1"), (2, "m1", "bot1"), (3, "m2", "bot1")]
        # a second join replays what was already handed out: nothing comes twice
        await buyer.join(order)
        await bot.send(order, "m3")
        (m,) = await messages(buyer, 1)
        assert (m.seq, m.text) == (4, "m3")


async def test_same_client_id_is_stored_once(chatd_proc, api):
    order = await api.order()
    async with client.connect(chatd_proc.base, token("supplier1", "supplier")) as s:
        cid = str(uuid.uuid4())
        first = await s.send(order, "once", client_id=cid)
        again = await s.send(order, "once", client_id=cid)
        assert (again.seq, again.duplicate, first.duplicate) == (first.seq, True, False)
    assert [m["text"] for m in await api.messages(order)] == ["once"]


async def test_errors_are_typed_with_the_contract_code_and_ref(chatd_proc, api):
    order = await api.order()
    async with client.connect(chatd_proc.base, token("buyer1", "buyer")) as buyer:
        with pytest.raises(client.NotFound) as e:
            await buyer.join("no-such-order")
        assert (e.value.code, e.value.ref) == ("not_found", "no-such-order")
        with pytest.raises(client.NotFound):
            await buyer.history("no-such-order")
        with pytest.raises(client.NotFound):
            await buyer.read("no-such-order", 1)
        with pytest.raises(client.Forbidden) as e:
            await buyer.set_status(order, "shipped", client_id="status-1")
        assert (e.value.code, e.value.ref) == ("forbidden", "status-1")
        with pytest.raises(client.TooLarge) as e:
            await buyer.send(order, "x" * 4001)
        assert e.value.code == "too_large"
        with pytest.raises(client.TooLarge):  # over the frame limit: refused before it is sent
            await buyer.send(order, "x" * 70_000)
        with pytest.raises(client.Conflict):
            await buyer.dispute(order, "close")
        with pytest.raises(client.BadRequest):
            await buyer.send(order, "   ")
        with pytest.raises(client.BadRequest):  # typing needs a join
            async with buyer.typing(order):
                pass
        assert isinstance(e.value, client.ChatdError)
        # none of that closed the connection
        ack = await buyer.send(order, "still here")
        assert ack.seq == 1 and buyer.reconnects == 0


async def test_status_and_dispute_post_messages_and_change_the_order(chatd_proc, api):
    order = await api.order()
    async with _buyer_and_supplier(chatd_proc) as (buyer, supplier):
        await buyer.join(order)
        await supplier.set_status(order, "packed", "Packed!")
        await buyer.dispute(order, "open", "late")
        got = await messages(buyer, 2)
        assert [(m.kind, m.status, m.text) for m in got] == [
            ("status", "packed", "Packed!"),
            ("dispute", None, "Dispute opened: late"),
        ]
        state = await next_event(buyer, wire.OrderState)
        assert state.dispute is not None and state.dispute.open and state.dispute.reason == "late"


async def test_the_supplier_side_hears_the_reply_clock_and_the_buyer_does_not(chatd_proc, api):
    order = await api.order()
    async with _buyer_and_supplier(chatd_proc) as (buyer, supplier):
        await buyer.join(order)
        await supplier.join(order)
        asked = await buyer.send(order, "When does it ship?")
        started = await next_event(supplier, client.ReplyState, order=order)
        assert started.awaiting_reply is not None and started.awaiting_reply.seq == asked.seq
        assert not started.awaiting_reply.overdue and started.awaiting_reply.due_at > started.awaiting_reply.since
        await supplier.send(order, "Tomorrow morning.")
        stopped = await next_event(supplier, client.ReplyState, order=order)
        assert stopped.awaiting_reply is None
        await buyer.send(order, "thanks")  # an acknowledgement starts no wait
        got = []
        async with asyncio.timeout(5):
            async for ev in buyer:
                got.append(ev)
                if isinstance(ev, client.Message) and ev.text == "thanks":
                    break
        assert not [ev for ev in got if isinstance(ev, client.ReplyState)]  # buyers never hear it


async def test_typing_block_shows_the_indicator_and_clears_it(chatd_proc, api):
    order = await api.order()
    async with _buyer_and_supplier(chatd_proc, typing_interval_s=0.2) as (buyer, supplier):
        await buyer.join(order)
        await supplier.join(order)
        async with supplier.typing(order):
            on = await next_event(buyer, wire.TypingEvent)
            assert (on.user.id, on.active) == ("supplier1", True)
            # kept alive by refreshes, so no `active: false` while the block runs
            await supplier.send(order, "typed")
            (m,) = await messages(buyer, 1)
            assert m.text == "typed"
        off = await next_event(buyer, wire.TypingEvent)
        assert (off.user.id, off.active) == ("supplier1", False)


async def test_read_moves_the_marker_and_others_see_the_receipt(chatd_proc, api):
    order = await api.order()
    async with _buyer_and_supplier(chatd_proc) as (buyer, supplier):
        await supplier.join(order)
        await supplier.send(order, "hello")
        await buyer.read(order, 1)
        r = await next_event(supplier, wire.Receipt)
        assert (r.user, r.seq) == ("buyer1", 1)


async def test_history_pages_and_inbox_notifications(chatd_proc, api):
    order = await api.order(buyer="buyer9")
    other = await api.order(buyer="buyer9")
    async with (
        client.connect(chatd_proc.base, token("buyer9", "buyer")) as buyer,
        client.connect(chatd_proc.base, token("bot1", "bot", **BOT)) as bot,
    ):
        for i in range(5):
            await bot.send(order, f"h{i}")
        page = await buyer.history(order, limit=2)
        assert [m.seq for m in page.messages] == [4, 5] and page.has_more
        page = await buyer.history(order, before=4, limit=10)
        assert [m.seq for m in page.messages] == [1, 2, 3] and not page.has_more
        page = await buyer.history(order, after=3)
        assert [m.seq for m in page.messages] == [4, 5]
        inbox = await buyer.inbox()
        assert {e.order for e in inbox.orders} >= {order, other}
        await bot.send(other, "psst")
        n = await next_event(buyer, wire.Notify)
        assert (n.order, n.message.text) == (other, "psst")


async def test_leave_and_removal_end_a_room(chatd_proc, api):
    order = await api.order(supplier="supplier7")
    async with (
        client.connect(chatd_proc.base, token("supplier7", "supplier")) as supplier,
        client.connect(chatd_proc.base, token("buyer1", "buyer")) as buyer,
    ):
        await buyer.join(order)
        left = await buyer.leave(order)
        assert (left.order, left.reason) == (order, "leave")
        await supplier.join(order)
        st, _ = await api.call("PUT", f"/api/v1/orders/{order}", {"supplier": {"id": "supplier8", "name": "S8"}})
        assert st == 200
        gone = await next_event(supplier, wire.Left)
        assert (gone.order, gone.reason) == (order, "removed")
        with pytest.raises(client.NotFound):
            await supplier.join(order)


async def test_closing_ends_iteration_and_refuses_requests(chatd_proc, api):
    order = await api.order()
    c = await client.connect(chatd_proc.base, token("buyer1", "buyer"))
    await c.join(order)
    await c.aclose()
    await c.aclose()  # idempotent
    seen = [ev async for ev in c]
    assert all(not isinstance(ev, wire.Message) for ev in seen)
    with pytest.raises(client.ClientClosed):
        await c.send(order, "late")


async def test_wrong_url_and_static_expired_token_fail_fast(chatd_proc):
    from tests.support.procs import free_port

    with pytest.raises(client.ConnectionFailed) as e:
        async with client.connect(f"http://127.0.0.1:{free_port()}", token("buyer1", "buyer")):
            pass
    assert "connection refused" in str(e.value)
    with pytest.raises(client.Unauthorized) as e:
        async with client.connect(chatd_proc.base, token("buyer1", "buyer", ttl_s=-10)):
            pass
    assert "expired" in e.value.message
    with pytest.raises(client.ConnectionFailed):  # not a WebSocket endpoint
        async with client.connect(chatd_proc.base + "/healthz", token("buyer1", "buyer")):
            pass


async def test_many_concurrent_requests_get_their_own_answers(chatd_proc, api):
    orders = [await api.order() for _ in range(3)]
    async with client.connect(chatd_proc.base, token("bot1", "bot", **BOT)) as bot:
        sends = [bot.send(o, f"{o}:{i}") for i in range(10) for o in orders]
        pages = [bot.history(o) for o in orders]
        bad = [bot.history("missing"), bot.read("missing", 3)]
        results = await asyncio.gather(*sends, *pages, *bad, return_exceptions=True)
        acks, rest = results[:30], results[30:]
        for i, ack in enumerate(acks):
            assert isinstance(ack, wire.Ack) and ack.order == orders[i % 3]
        for o in orders:
            assert sorted(a.seq for a in acks if a.order == o) == list(range(1, 11))
        assert [p.order for p in rest[:3]] == orders
        assert all(isinstance(x, client.NotFound) for x in rest[3:])


async def test_a_reader_that_falls_behind_is_bounded_and_misses_nothing(chatd_proc, api):
    """The application stops reading while 700 messages arrive: the client
    keeps at most `max_queued_events` waiting, and once read, the rest comes
    by rejoining from the last one handed out: every message once, in order."""
    order = await api.order()
    async with (
        client.connect(chatd_proc.base, token("buyer1", "buyer"), max_queued_events=40) as reader,
        client.connect(chatd_proc.base, token("bot1", "bot", **BOT)) as bot,
    ):
        await reader.join(order)
        for start in range(0, 700, 50):
            await asyncio.gather(*(bot.send(order, f"m{i}") for i in range(start, start + 50)))
        await reader.history(order, limit=1)  # answered after every message frame before it
        assert reader.queued <= 41  # the joined event and 40 messages
        got, unread = [], []
        async with asyncio.timeout(30):
            async for ev in reader:
                if isinstance(ev, wire.Message):
                    got.append(ev)
                elif isinstance(ev, wire.Unread):
                    unread.append(ev.count)
                if len(got) == 700 and unread and unread[-1] == 700:
                    break
        assert [m.seq for m in got] == list(range(1, 701))
        assert len(unread) < 700  # held unread counts were folded into the newest
        assert sorted(m.text for m in got) == sorted(f"m{i}" for i in range(700))
        await bot.send(order, "live")
        (m,) = await messages(reader, 1)
        assert (m.seq, m.text) == (701, "live")


async def test_refusals_the_caller_gets_are_not_also_logged(chatd_proc, api, caplog):
    """A refused `read` or `typing` raises in the caller; it is not a stray error worth a warning."""
    order = await api.order()
    async with client.connect(chatd_proc.base, token("supplier1", "supplier")) as c:
        with caplog.at_level("WARNING", logger="chatd.client"):
            with pytest.raises(client.BadRequest):
                async with c.typing(order):
                    pass
            with pytest.raises(client.NotFound):
                await c.read(f"no-such-{order}", 1)
            await c.ping()
    assert [r.getMessage() for r in caplog.records if r.name == "chatd.client"] == []
