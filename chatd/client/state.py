"""The client's bookkeeping as plain values, no I/O and no event loop.

`Requests` pairs each server reply with the request it answers; `Room` keeps
what one joined order has delivered, so a resume asks for exactly the rest
and a message is never handed out twice. The connection layer
(`chatd.client.connection`) feeds frames in and acts on what comes out.
"""

from __future__ import annotations

from typing import Any

import msgspec

from chatd import wire
from chatd.client.errors import ChatdError, error_for

# What answers a request: the tag of the reply frame. "pong" also closes
# requests that have no reply of their own (read, typing): each is followed
# by a ping, and the server answers frames in order, so an error for the
# request arrives before that pong, and silence until the pong means success.
ACK, JOINED, LEFT, HISTORY, INBOX, PONG, READY = "ack", "joined", "left", "history", "inbox", "pong", "ready"

_REPLY_OF: dict[type[msgspec.Struct], str] = {
    wire.Joined: JOINED,
    wire.Left: LEFT,
    wire.HistoryPage: HISTORY,
    wire.InboxPage: INBOX,
    wire.Pong: PONG,
    wire.Ready: READY,
}


class Request:
    """One request in flight: its frame(s), what answers it, and who waits.

    `waiter` is opaque here (the connection layer puts a future in it).
    `resend` says whether it is sent again on a new connection when no reply
    came on the old one (sends are: that is how exactly-once works).
    """

    __slots__ = ("frame", "expect", "order", "client_id", "waiter", "error", "resend", "sent_on", "quiet", "resume")

    def __init__(self, frame: Any, expect: str, waiter: Any = None, resend: bool = True) -> None:
        self.frame = frame
        self.expect = expect
        self.order: str | None = getattr(frame, "order", None)
        self.client_id: str | None = getattr(frame, "client_id", None)
        self.waiter = waiter
        self.error: ChatdError | None = None  # an error seen before the closing pong
        self.resend = resend
        self.sent_on = 0  # the connection number it was last written on; 0: not yet
        self.quiet = expect == PONG and not isinstance(frame, wire.Ping)
        self.resume = False  # a join whose `since` the client chose: what was handed out stays handed out

    def frames(self) -> list[Any]:
        return [self.frame, wire.Ping()] if self.quiet else [self.frame]

    def __repr__(self) -> str:
        return f"Request({type(self.frame).__name__}, expect={self.expect}, order={self.order})"


class Requests:
    """Requests in the order they were written, matched to replies.

    Acks are found by `client_id`, errors by `ref` (a client_id, else an
    order, else the oldest request without either), other replies by type
    and order. Because the server answers one connection's frames in order,
    the oldest candidate is always the right one.
    """

    def __init__(self) -> None:
        self.items: list[Request] = []

    def __len__(self) -> int:
        return len(self.items)

    def add(self, req: Request) -> None:
        self.items.append(req)

    def remove(self, req: Request) -> None:
        try:
            self.items.remove(req)
        except ValueError:
            pass

    def match(self, frame: Any) -> tuple[Request, Any] | None:
        """The request `frame` answers and its outcome (a reply frame or a
        `ChatdError`), removed from the table; None if it answers nothing
        (yet: an error for a request that still waits for its pong)."""
        if isinstance(frame, wire.Ack):
            for req in self.items:
                if req.expect == ACK and req.client_id == frame.client_id:
                    self.items.remove(req)
                    return req, frame
            return None
        if isinstance(frame, wire.ErrorFrame):
            return self._match_error(frame)
        expect = _REPLY_OF.get(type(frame))
        if expect is None or (expect == LEFT and frame.reason != "leave"):
            return None
        order = getattr(frame, "order", None)
        for req in self.items:
            if req.expect == expect and (order is None or req.order == order):
                self.items.remove(req)
                if expect == PONG and req.error is not None:
                    return req, req.error
                return req, frame
        return None

    def _match_error(self, frame: wire.ErrorFrame) -> tuple[Request, Any] | None:
        err = error_for(frame.code, frame.message, frame.ref)
        ref = frame.ref
        candidates = [r for r in self.items if r.error is None]
        req = None
        if ref is not None:
            req = next((r for r in candidates if r.client_id == ref), None)
            if req is None:
                req = next((r for r in candidates if r.order == ref), None)
        if req is None:
            req = next((r for r in candidates if r.order is None and r.client_id is None), None)
        if req is None:
            return None
        if req.quiet:
            req.error = err  # the pong that follows closes it
            return None
        self.items.remove(req)
        return req, err

    def holds(self, frame: wire.ErrorFrame) -> bool:
        """Whether a request waits for its pong with this error (its caller gets it then)."""
        return any(
            r.error is not None
            and (r.error.code, r.error.message, r.error.ref) == (frame.code, frame.message, frame.ref)
            for r in self.items
        )

    def take_all(self) -> list[Request]:
        items, self.items = self.items, []
        return items


class Room:
    """One joined order: the highest seq handed out, and where to resume.

    `floor` is where a resume starts when nothing was delivered yet (the
    `since` of the join, or the order's last seq when the join asked for
    recent context only). While `buffer` is a list, a truncated replay is
    being completed from history and live messages wait there. While
    `overflow` is set, the application had too many events waiting: the
    room's messages are dropped until a rejoin from `delivered` replays them.
    `synced` says a `joined` came, so `resume_since` means something.
    """

    __slots__ = ("order", "delivered", "floor", "buffer", "overflow", "synced")

    def __init__(self, order: str) -> None:
        self.order = order
        self.delivered = 0
        self.floor = 0
        self.buffer: list[wire.Message] | None = None
        self.overflow = False
        self.synced = False

    def resume_since(self) -> int:
        return self.delivered if self.delivered else self.floor

    def joined(self, frame: wire.Joined, since: int | None, resume: bool = False) -> bool:
        """A `joined` for this room arrived; True if history must fill a gap first.

        With `since`, what follows starts right after it (a replay asked for
        on purpose), or, on a `resume`, right after what was handed out (which
        may have grown while the join was on its way); without, the replay is
        recent context and is deduplicated against what was already handed out.
        """
        self.synced = True
        if since is not None:
            self.floor = since
            self.delivered = max(self.delivered, since) if resume else since
        else:
            self.floor = frame.last_seq
        self.buffer = None
        self.overflow = False  # the server goes on from here, in order
        if frame.truncated and since is not None:
            self.buffer = []
            return True
        return False

    def offer(self, m: wire.Message) -> bool:
        """A message from the stream: True if it is new and is handed out now."""
        if self.buffer is not None:
            self.buffer.append(m)
            return False
        return self.take(m)

    def take(self, m: wire.Message) -> bool:
        """Hand out `m` unless an equal or later seq already went out."""
        if m.seq <= self.delivered:
            return False
        self.delivered = m.seq
        return True

    def fill_done(self) -> list[wire.Message]:
        """The gap is filled: the waiting messages that are still new, in order."""
        waiting, self.buffer = self.buffer or [], None
        return [m for m in waiting if self.take(m)]

    def fill_stop(self) -> int | None:
        """History pages stop below this seq (the first one the stream replayed)."""
        return self.buffer[0].seq if self.buffer else None
