"""Room state: plain values in and out, the clock passed in."""

from chatd.rooms.room import Member, Room


def test_presence_counts_first_and_last_connection():
    room = Room("o1")
    a, b = object(), object()
    assert room.add(a, "u1", Member(True)) is True
    assert room.add(b, "u1", Member(True)) is False
    assert room.remove(a, "u1") is False
    assert room.remove(b, "u1") is True
    assert room.remove(b, "u1") is False  # not a member any more
    assert room.empty()


def test_typing_is_throttled_and_expires():
    room = Room("o1")
    assert room.typing_update("u1", True, now=10.0, ttl_s=6, min_interval_s=1) is True
    assert room.typing_update("u1", True, now=10.5, ttl_s=6, min_interval_s=1) is False  # throttled
    assert room.typing_update("u1", True, now=11.2, ttl_s=6, min_interval_s=1) is True
    assert room.typing_expired(now=17.0) == []  # refreshed at 11.2: deadline 17.2
    assert room.typing_expired(now=17.2) == ["u1"]
    assert room.typing_expired(now=18.0) == []


def test_typing_stop_is_forwarded_only_when_shown():
    room = Room("o1")
    assert room.typing_update("u1", False, 1.0, 6, 1) is False
    room.typing_update("u1", True, 1.0, 6, 1)
    assert room.typing_update("u1", False, 1.5, 6, 1) is True
    assert room.typing == {}
