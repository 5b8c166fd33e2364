"""chatd.responses: which messages start and stop the reply clock, and the report's figures."""

from __future__ import annotations

import pytest

from chatd.responses import breach_notice, effect, is_acknowledgement, report

ACKS = ["thanks", "Thank you!", "ok", "OK 👍", "great, thanks a lot", "Perfect.", "got it", "👍", "🙏🙏", "merci"]
QUESTIONS = [
    "ok?",
    "thanks, but where is it",
    "Great. When does it ship",
    "ok 3 more please",
    "no",
    "thanks thanks thanks thanks thanks thanks thanks",  # more than six words
    "Can you deliver before noon",
    "",
    "   ",
]


@pytest.mark.parametrize("text", ACKS)
def test_acknowledgements_start_no_clock(text):
    assert is_acknowledgement(text)
    assert effect("buyer", "text", text, False) is None


@pytest.mark.parametrize("text", QUESTIONS)
def test_anything_else_a_buyer_writes_asks(text):
    assert not is_acknowledgement(text)
    assert effect("buyer", "text", text, False) == "ask"


def test_who_starts_and_who_stops_the_clock():
    assert effect("buyer", "text", "thanks", True) == "ask"  # a photo with "thanks" may need a look
    for kind in ("note", "status", "dispute", "system"):
        assert effect("buyer", kind, "where is it", False) is None
        assert effect("supplier", kind, "here", False) is None
    assert effect("supplier", "text", "on its way", False) == "answer"
    assert effect("sales_rep", "text", "", True) == "answer"
    for role in ("staff", "bot"):
        assert effect(role, "text", "hello", False) is None


def test_the_report_against_a_hand_computed_fixture():
    h = 3_600_000  # ms
    now = 1_000 * h
    periods = [
        (now - 100 * h, now - 99 * h),  # answered in 1 h
        (now - 90 * h, now - 88 * h),  # 2 h
        (now - 80 * h, now - 77 * h),  # 3 h
        (now - 70 * h, now - 66 * h),  # 4 h
        (now - 60 * h, now - 30 * h),  # 30 h: late
        (now - 50 * h, None),  # waiting 50 h: overdue, late
        (now - 1 * h, None),  # waiting 1 h: not decided yet
    ]
    r = report(periods, 7, 86_400.0, now)
    assert (r["asked"], r["answered"], r["waiting"], r["overdue"], r["late"]) == (7, 5, 2, 1, 2)
    assert r["median_s"] == 3 * 3600  # of 1, 2, 3, 4, 30 h
    assert r["p90_s"] == 30 * 3600  # nearest rank: ceil(0.9 * 5) = the 5th
    assert r["late_rate"] == 2 / 6  # late / (5 answered + 1 overdue)
    even = report(periods[:4], 7, 86_400.0, now)
    assert even["median_s"] == 2.5 * 3600 and even["p90_s"] == 4 * 3600 and even["late_rate"] == 0
    empty = report([], 30, 86_400.0, now)
    assert (empty["asked"], empty["median_s"], empty["p90_s"], empty["late_rate"]) == (0, None, None, None)


def test_the_breach_notice_names_the_limit():
    assert breach_notice(86_400) == "Reply overdue: the buyer has waited more than 24 hours for an answer."
    assert breach_notice(1800) == "Reply overdue: the buyer has waited more than 30 minutes for an answer."
