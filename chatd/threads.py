"""Admin threads: every order's chat, newest activity first, with filters and full-text search.

Pagination is keyset on (activity, order id) *as of a snapshot*. The first page
records the newest `message_log` id it saw; every later page orders threads by
their activity as of that id. A thread that gets a message meanwhile keeps its
place instead of jumping above the cursor (where plain keyset pagination
would skip it), and a thread already listed cannot come round again: every
thread that existed at the first page is listed exactly once. Which threads
pass a filter (dispute, unread, has_messages, q) is decided on each page with
the data of that moment; `last_message` and counts are always current.

The queries are the store's (`Store.thread_page`, which reads off the loop):
this module checks the request, carries the cursor and shapes the answer.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, NotRequired, TypedDict

import msgspec
from msgspec import Meta

from chatd.errors import BadRequest, Forbidden
from chatd.responses import awaiting
from chatd.store.base import Store
from chatd.store.records import ThreadFilter, ThreadRow
from chatd.wire import ID_CHARS, AwaitingReply, DisputeState, Message, Participant, Seq, decode_json

QUERY_CHARS = 1000  # the q of a search: at most MAX_TERMS words are used anyway
CURSOR_CHARS = 2048  # base64 of JSON naming an order id of up to 200 (escaped) characters

MAX_TERMS = 16


class ThreadQuery(msgspec.Struct, frozen=True):
    dispute: str | None = None  # "open", "closed" (had one, now closed), "none"
    unread_for: Annotated[str, Meta(max_length=ID_CHARS)] | None = None  # threads where this user has unread messages
    has_messages: str = "true"  # "true" (default), "false", "any"
    q: Annotated[str, Meta(max_length=QUERY_CHARS)] | None = None  # full-text: every word, as a word or a prefix
    status: Annotated[str, Meta(max_length=ID_CHARS)] | None = None
    awaiting_reply: str | None = None  # "true": the buyer waits for the supplier side; "false": nobody waits
    overdue: str | None = None  # "true": ... and was escalated ([sla] reply_within_s passed)
    attention: str | None = None  # "true": the staff attention queue (chatd.attention)
    limit: int = 50
    cursor: Annotated[str, Meta(max_length=CURSOR_CHARS)] | None = None


class ThreadEntry(TypedDict):
    """One thread of a page, as JSON."""

    order: str
    status: str
    dispute_open: bool
    dispute: DisputeState | None
    participants: list[Participant]
    message_count: int
    activity_ts: int
    last_message: Message | None
    awaiting_reply: AwaitingReply | None
    unread: NotRequired[int]  # with `unread_for`
    match_count: NotRequired[int]  # with `q`
    matches: NotRequired[list[Message]]
    reasons: NotRequired[list[str]]  # with `attention`
    staff_unread: NotRequired[int]  # with `attention`: the shared staff marker's count


class ThreadsPage(TypedDict):
    threads: list[ThreadEntry]
    next_cursor: str | None


def search_words(q: str) -> tuple[str, ...]:
    """The words of `q` the search requires (each as a word or a word's prefix).

    Split like the index's tokenizer does (letters and digits), so no query
    syntax of any backend passes through.
    """
    terms = re.findall(r"[^\W_]+", q)[:MAX_TERMS]
    if not terms:
        raise BadRequest("q must contain at least one word")
    return tuple(terms)


def _encode_cursor(as_of: int, activity: int, order_id: str) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([1, as_of, activity, order_id])).decode().rstrip("=")


_CursorFields = tuple[int, Seq, Seq, Annotated[str, Meta(max_length=ID_CHARS)]]  # version, as_of, activity, order


def _decode_cursor(cursor: str) -> tuple[int, int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, as_of, activity, order_id = decode_json(raw, _CursorFields)
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadRequest("invalid cursor") from exc
    if version != 1:
        raise BadRequest("invalid cursor")
    return as_of, activity, order_id


OnlineEach = Callable[[Sequence[str]], Awaitable[dict[str, frozenset[str]]]]


async def _nobody_online(order_ids: Sequence[str]) -> dict[str, frozenset[str]]:
    return dict.fromkeys(order_ids, frozenset())


class Threads:
    """GET /api/v1/threads: checks the query, asks the store for a page, shapes it."""

    def __init__(
        self,
        store: Store,
        online: OnlineEach = _nobody_online,
        max_limit: int = 200,
        *,
        reply_within_s: float = 86_400.0,
    ) -> None:
        self.store = store
        self.online = online  # order ids -> users with a live connection joined to each, on any instance
        self.max_limit = max_limit
        self.reply_within_ms = int(reply_within_s * 1000)  # [sla]: a waiting buyer's reply is due after this

    def close(self) -> None:
        """Nothing to release: the store owns its connections."""

    async def apage(self, query: ThreadQuery, scope_user: str | None = None, staff: str | None = None) -> ThreadsPage:
        """One page: `{threads, next_cursor}`. `scope_user` limits it to the orders where
        that user holds the supplier or sales rep slot (a supplier-side caller); `staff`
        (a staff token's id) leaves out the orders where that id is the buyer: a buyer
        there, whatever the token says, and buyers have no threads. With `attention`,
        the staff queue: `staff`'s own (their follows, none of their slots), or for the
        api key every order any staff member must see."""
        if query.limit < 1:
            raise BadRequest("limit must be at least 1")
        if query.has_messages not in ("true", "false", "any"):
            raise BadRequest("has_messages must be true, false or any")
        if query.dispute not in (None, "open", "closed", "none"):
            raise BadRequest("dispute must be open, closed or none")
        if query.awaiting_reply not in (None, "true", "false"):
            raise BadRequest("awaiting_reply must be true or false")
        if query.overdue not in (None, "true"):
            raise BadRequest("overdue must be true")
        if query.attention not in (None, "true"):
            raise BadRequest("attention must be true")
        if query.attention and scope_user is not None:
            raise Forbidden("the staff attention queue is for staff and the api key")
        filters = ThreadFilter(
            dispute=query.dispute,
            unread_for=query.unread_for or None,
            has_messages=query.has_messages,
            words=search_words(query.q) if query.q else (),
            scope_user=scope_user,
            staff=staff,
            status=query.status,
            awaiting_reply=None if query.awaiting_reply is None else query.awaiting_reply == "true",
            overdue=query.overdue == "true",
            attention=query.attention == "true",
            queue_user=staff,
            emails=scope_user is None,  # never the supplier side: a match would confirm a buyer's e-mail
        )
        after = _decode_cursor(query.cursor) if query.cursor else None
        if filters.words:
            await self.store.index_search()  # a search sees every message stored before it
        page = await self.store.thread_page(filters, after, min(query.limit, self.max_limit))
        online = await self.online([row.order.id for row in page.rows])
        threads = [self._entry(row, query, online[row.order.id]) for row in page.rows]
        last = page.rows[-1] if page.rows else None
        next_cursor = _encode_cursor(page.as_of, last.activity, last.order.id) if page.more and last else None
        return {"threads": threads, "next_cursor": next_cursor}

    def _entry(self, row: ThreadRow, query: ThreadQuery, online: frozenset[str]) -> ThreadEntry:
        order = row.order
        participants = order.participants(online)
        entry: ThreadEntry = {
            "order": order.id,
            "status": order.status,
            "dispute_open": bool(order.dispute and order.dispute.open),
            "dispute": order.dispute,
            "participants": participants,
            "message_count": order.last_seq,  # seqs are gapless and messages are never deleted
            "activity_ts": row.activity,
            "last_message": row.last,
            "awaiting_reply": awaiting(order.waiting, self.reply_within_ms),
        }
        if query.unread_for:
            entry["unread"] = row.unread or 0
        if row.matches is not None:
            entry["match_count"] = row.match_count
            entry["matches"] = row.matches
        if row.reasons is not None:
            entry["reasons"] = row.reasons
            entry["staff_unread"] = row.staff_unread or 0
        return entry
