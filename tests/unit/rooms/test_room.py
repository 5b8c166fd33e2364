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
    assert room.typing_update("u1", True, now=10.0, ttl_s=6, interval_s=1) is True
    assert room.typing_update("u1", True, now=10.5, ttl_s=6, interval_s=1) is None  # throttled
    assert room.typing_update("u1", True, now=11.2, ttl_s=6, interval_s=1) is True
    assert room.typing_due(now=17.0, interval_s=1) == []  # refreshed at 11.2: deadline 17.2
    assert room.typing_due(now=17.2, interval_s=1) == [("u1", False)]
    assert room.typing_due(now=18.0, interval_s=1) == []


def test_typing_stop_is_forwarded_only_when_shown():
    room = Room("o1")
    assert room.typing_update("u1", False, 1.0, 6, 1) is None
    assert room.typing_update("u1", True, 1.0, 6, 1) is True
    assert room.typing_update("u1", False, 2.5, 6, 1) is False
    assert room.typing_due(4.0, 1) == []
    assert room.typing == {}  # nothing shown, nothing waiting: forgotten


def test_typing_stop_inside_the_interval_is_sent_at_its_end():
    room = Room("o1")
    assert room.typing_update("u1", True, 1.0, 6, 1) is True
    assert room.typing_update("u1", False, 1.1, 6, 1) is None  # waits: one event per interval
    assert room.typing_due(1.9, 1) == []
    assert room.typing_due(2.0, 1) == [("u1", False)]
    assert room.typing_due(2.5, 1) == []


def test_typing_stop_and_start_inside_the_interval_send_the_start():
    """Receivers may have hidden the indicator on the typist's message: the new start is news."""
    room = Room("o1")
    assert room.typing_update("u1", True, 1.0, 6, 1) is True
    assert room.typing_update("u1", False, 1.2, 6, 1) is None
    assert room.typing_update("u1", True, 1.4, 6, 1) is None
    assert room.typing_due(2.0, 1) == [("u1", True)]
    assert room.typing_update("u1", True, 2.1, 6, 1) is None  # a plain refresh inside the interval
    assert room.typing_due(3.0, 1) == []


def test_alternating_typing_is_one_event_per_interval_and_the_latest_wins():
    """1,000 alternating frames over 2 s: a handful of events, and the last is the final state."""
    room = Room("o1")
    sent = []
    now = 0.0
    for i in range(1000):
        now = i * 0.002
        r = room.typing_update("u1", i % 2 == 0, now, 6, 1)  # ends with active: false
        if r is not None:
            sent.append(r)
        if i % 100 == 0:  # the sweeper's ticks
            sent += [a for _, a in room.typing_due(now, 1)]
    sent += [a for _, a in room.typing_due(now + 1, 1)]
    assert 1 <= len(sent) <= 4, sent  # at most one per started second, plus the final state
    assert sent[-1] is False
    assert room.typing_due(now + 10, 1) == [] and room.typing == {}


def test_typing_clear_says_whether_it_was_shown_and_of_what():
    room = Room("o1")
    assert room.typing_clear("u1") is None
    room.typing_update("u1", True, 1.0, 6, 1)
    assert room.typing_clear("u1") is False  # shown, and not a note
    room.typing_update("u1", True, 1.0, 6, 1, note=True)
    assert room.typing_clear("u1") is True  # a note: the stop goes to note readers
    assert room.typing == {}


def test_switching_between_a_note_and_text_stops_the_old_kind_and_keeps_the_interval():
    room = Room("o1")
    assert room.typing_update("u1", True, 10.0, 6, 1) is True and not room.typing_note("u1")  # text, to all
    assert room.typing_switch("u1", True, 10.2) is True  # a note now: the text indicator stops for all
    assert room.typing_update("u1", True, 10.2, 6, 1, note=True) is None  # the note's start waits for the interval
    assert room.typing_note("u1")
    assert room.typing_due(11.0, 1) == []
    assert room.typing_due(11.3, 1) == [("u1", True)]  # to note readers (typing_note)
    # back and forth inside one interval: the note shown stops once (at the first text frame),
    # nothing else is forwarded until the interval is over, then the latest kind starts
    switched = []
    for i in range(101):
        note = i % 2 == 1
        switched.append(room.typing_switch("u1", note, 11.4))
        room.typing_update("u1", True, 11.4, 6, 1, note=note)
    assert switched == [True] + [False] * 100
    assert room.typing_due(12.0, 1) == []
    assert room.typing_due(12.5, 1) == [("u1", True)] and not room.typing_note("u1")
