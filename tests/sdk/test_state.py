"""The client's bookkeeping, without a loop or a socket."""

from __future__ import annotations

from chatd import wire
from chatd.client import errors
from chatd.client.state import ACK, HISTORY, JOINED, PONG, Request, Requests, Room
from chatd.client.urls import http_url, ws_url

BOT = wire.UserRef("b", "Bot", "bot")


def msg(seq: int, order: str = "o") -> wire.Message:
    return wire.Message(order, seq, 0, "text", BOT, f"m{seq}", None, [])


def joined(last_seq: int, truncated: bool = False) -> wire.Joined:
    return wire.Joined("o", "open", None, [], last_seq, 0, 0, truncated)


def test_acks_match_by_client_id_whatever_the_order():
    table = Requests()
    a = Request(wire.Send("o", "a", "x"), ACK)
    b = Request(wire.Send("o", "b", "y"), ACK)
    table.add(a)
    table.add(b)
    ack_b = wire.Ack("o", "b", 2, 0, False)
    assert table.match(ack_b) == (b, ack_b)
    assert table.match(wire.Ack("o", "zzz", 3, 0, False)) is None
    assert len(table) == 1


def test_errors_match_by_ref_client_id_then_order_then_the_oldest_without_either():
    table = Requests()
    send = Request(wire.Send("o", "c1", "x"), ACK)
    hist = Request(wire.History("p"), HISTORY)
    inbox = Request(wire.Inbox(), "inbox")
    for r in (send, hist, inbox):
        table.add(r)
    req, err = table.match(wire.ErrorFrame("not_found", "no such order", "p"))
    assert req is hist and isinstance(err, errors.NotFound) and err.ref == "p"
    req, err = table.match(wire.ErrorFrame("bad_request", "invalid cursor"))
    assert req is inbox and isinstance(err, errors.BadRequest)
    req, err = table.match(wire.ErrorFrame("rate_limited", "slow down", "c1"))
    assert req is send and isinstance(err, errors.RateLimited)
    assert table.match(wire.ErrorFrame("internal", "?", "nobody")) is None


def test_a_quiet_request_is_closed_by_its_pong_with_the_error_seen_before_it():
    table = Requests()
    read = Request(wire.Read("o", 3), PONG)
    assert [type(f) for f in read.frames()] == [wire.Read, wire.Ping]
    later = Request(wire.History("o"), HISTORY)
    table.add(read)
    table.add(later)
    assert table.match(wire.ErrorFrame("not_found", "no such order", "o")) is None  # waits for the pong
    req, err = table.match(wire.Pong())
    assert req is read and isinstance(err, errors.NotFound)
    # a second error for the same order belongs to the next request, not the closed one
    req, err = table.match(wire.ErrorFrame("not_found", "no such order", "o"))
    assert req is later


def test_replies_match_by_type_and_order():
    table = Requests()
    j1 = Request(wire.Join("a"), JOINED)
    j2 = Request(wire.Join("o"), JOINED)
    table.add(j1)
    table.add(j2)
    assert table.match(joined(0))[0] is j2
    assert table.match(wire.Left("a", "removed")) is None  # not an answer to anything


def test_room_hands_out_each_seq_once_and_resumes_after_the_last():
    room = Room("o")
    room.joined(joined(3), since=None)
    assert room.resume_since() == 3  # nothing delivered yet: start from now
    assert [room.offer(msg(s)) for s in (2, 3, 3, 4, 1)] == [True, True, False, True, False]
    assert room.resume_since() == 4


def test_room_buffers_the_stream_while_history_fills_a_truncated_replay():
    room = Room("o")
    room.delivered = 10
    assert room.joined(joined(40, truncated=True), since=10) is True
    for s in range(36, 42):  # the replay (newest 5) and one live message
        assert room.offer(msg(s)) is False
    assert room.fill_stop() == 36
    assert [room.take(msg(s)) for s in range(11, 36)] == [True] * 25  # from history
    assert [m.seq for m in room.fill_done()] == list(range(36, 42))
    assert room.offer(msg(41)) is False and room.offer(msg(42)) is True


def test_urls():
    assert ws_url("http://h:8080") == "ws://h:8080/ws"
    assert ws_url("https://h/") == "wss://h/ws"
    assert ws_url("h:1") == "ws://h:1/ws"
    assert ws_url("ws://h:1/chat/ws") == "ws://h:1/chat/ws"
    assert http_url("ws://h:1/ws") == "http://h:1"
    assert http_url("wss://h/chat/ws") == "https://h/chat"
    assert http_url("http://h:1/") == "http://h:1"


def test_unknown_codes_keep_their_code():
    err = errors.error_for("brand_new", "something new", "o")
    assert type(err) is errors.ChatdError and err.code == "brand_new" and str(err) == "brand_new: something new"
    assert isinstance(errors.error_for("unavailable", "x"), errors.Unavailable)


def test_a_base_url_with_a_path_prefix_gets_ws_after_it():
    """As the widget does: the prefix is kept, `/ws` follows it; an endpoint stays as given."""
    assert ws_url("https://example.com/chat") == "wss://example.com/chat/ws"
    assert ws_url("https://example.com/chat/") == "wss://example.com/chat/ws"
    assert ws_url("https://example.com/chat/ws") == "wss://example.com/chat/ws"
    assert http_url("https://example.com/chat") == "https://example.com/chat"
