"""Response times: which messages start and stop the clock of a buyer waiting for
the business side, and the figures of the response-times report. Pure functions.

A waiting period starts at a buyer's message that asks for something and ends
at the first message the supplier or the sales rep writes into the chat after
it (a note is internal: it answers nobody). Calendar time, no business hours.
The store applies `effect` inside the write of each message (chatd.store), so
the clock is exact with any number of instances writing.
"""

from __future__ import annotations

import math
import re
import statistics
import unicodedata
from typing import Literal, TypedDict

from chatd.auth import permissions
from chatd.store.records import Waiting
from chatd.wire import AwaitingReply

# A buyer message made only of these words (at most ACK_MAX_WORDS of them, no
# question mark, no digit, no attachment) is an acknowledgement: it asks nothing.
ACK_WORDS = frozenset(
    """
    ok okay okey k kk alright fine sure yes yep cool great perfect super excellent brilliant awesome
    wonderful lovely nice good sounds noted received understood got it all right
    thanks thank thankyou thx tx ty tysm cheers appreciated appreciate you so much very many lot a
    again merci danke gracias grazie obrigado obrigada
    """.split()
)
ACK_MAX_WORDS = 6
_WORD = re.compile(r"[^\W\d_]+")

Effect = Literal["ask", "answer"]


def is_acknowledgement(text: str) -> bool:
    """ "thanks", "ok 👍", "Great, thank you!": nothing to answer. "ok?" or
    "thanks, but where is it" are questions and start the clock."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    if "?" in folded or any(ch.isdigit() for ch in folded):
        return False
    words = _WORD.findall(folded)
    if not words:  # emoji or punctuation only ("👍", "!!"); an empty text is not one
        return bool(folded.strip())
    return len(words) <= ACK_MAX_WORDS and all(w in ACK_WORDS for w in words)


def effect(role: str, kind: str, text: str, has_attachments: bool) -> Effect | None:
    """What a stored message does to the order's reply clock: a buyer's message
    that is not an acknowledgement asks (starts it, if it is not running); a
    supplier's or sales rep's chat message answers (stops it). Notes, status,
    dispute, system and bot messages, and staff, do neither."""
    if kind != "text":
        return None
    if role == "buyer":
        return None if not has_attachments and is_acknowledgement(text) else "ask"
    if role in permissions.SUPPLIER_SIDE:
        return "answer"
    return None


def awaiting(waiting: Waiting | None, reply_within_ms: int) -> AwaitingReply | None:
    """The reply clock as the supplier side, staff and bots see it (never buyers)."""
    if waiting is None:
        return None
    due = waiting.since + reply_within_ms if reply_within_ms > 0 else None  # 0: no reply is ever due
    return AwaitingReply(waiting.seq, waiting.since, due, waiting.escalated)


def may_dismiss(role: str) -> bool:
    """Who may mark a buyer message as needing no reply: the side that would answer, and staff."""
    return role in permissions.SUPPLIER_SIDE or role == "staff"


def breach_notice(reply_within_s: float) -> str:
    """The note posted when a buyer has waited longer than `reply_within_s`."""
    hours = reply_within_s / 3600
    limit = f"{hours:g} hours" if hours >= 2 else f"{reply_within_s / 60:g} minutes"
    return f"Reply overdue: the buyer has waited more than {limit} for an answer."


class Report(TypedDict):
    """GET /api/v1/reports/response-times, as JSON."""

    days: int
    reply_within_s: float
    asked: int  # waiting periods that started in the window
    answered: int
    waiting: int  # not answered yet
    overdue: int  # ... and waiting longer than reply_within_s now
    median_s: float | None  # first-response time of the answered ones
    p90_s: float | None
    late: int  # answered after reply_within_s, or overdue
    late_rate: float | None  # late / (answered + overdue)


def report(periods: list[tuple[int, int | None]], days: int, reply_within_s: float, now_ms: int) -> Report:
    """The figures over waiting periods given as (asked at, answered at or None), ms.

    median: the middle first-response time (the mean of the two middle ones for
    an even count); p90: the nearest-rank 90th percentile (the smallest time at
    least 90% of answers took no longer than)."""
    within_ms = reply_within_s * 1000
    times = sorted((done - asked) / 1000 for asked, done in periods if done is not None)
    waiting = [asked for asked, done in periods if done is None]
    overdue = sum(1 for asked in waiting if now_ms - asked > within_ms)
    late = sum(1 for t in times if t * 1000 > within_ms) + overdue
    decided = len(times) + overdue
    return {
        "days": days,
        "reply_within_s": reply_within_s,
        "asked": len(periods),
        "answered": len(times),
        "waiting": len(waiting),
        "overdue": overdue,
        "median_s": statistics.median(times) if times else None,
        "p90_s": times[math.ceil(0.9 * len(times)) - 1] if times else None,
        "late": late,
        "late_rate": late / decided if decided else None,
    }
