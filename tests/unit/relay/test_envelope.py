"""RedisRelay drops its own publishes by their first bytes, undecoded: every
envelope of an instance starts with that instance's prefix, and no other
instance's envelope does (not even one whose id extends it)."""

from __future__ import annotations

from chatd.relay.redis import PRESENCE, ROOM, USER, Envelope, PresenceNote, _decode, _encode, origin_prefix
from chatd.rooms.events import RoomEvent, UserEvent


def envelopes(origin: str) -> list[bytes]:
    room = RoomEvent("o1", b"frame", seq=3, notes=True, skip_user="u1")
    return [
        _encode(Envelope(origin, ROOM, room=room)),
        _encode(Envelope(origin, USER, user=UserEvent("u1", b"unread", order="o1", side=True, hidden=2))),
        _encode(Envelope(origin, PRESENCE, room=room, presence=PresenceNote("u1", True))),
    ]


def test_own_envelopes_start_with_the_prefix_and_others_do_not():
    me = "4242-0123abcd"
    own = origin_prefix(me)
    for data in envelopes(me):
        assert data.startswith(own)
        assert _decode(data).origin == me
    for other in ("4242-0123abce", "4242-0123abcd0", "4242-0123abc", "", "x" * 40, "ü-0123abcd"):
        assert not any(data.startswith(own) for data in envelopes(other)), other


def test_long_ids_too():
    """Ids past 31 bytes take a longer msgpack string header: still a prefix."""
    me = "p" * 300
    assert all(data.startswith(origin_prefix(me)) for data in envelopes(me))
    assert not any(data.startswith(origin_prefix(me)) for data in envelopes("p" * 301))
