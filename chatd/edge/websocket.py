"""One WebSocket after the handshake, served by callbacks instead of a coroutine.

aiohttp keeps a handler task, its coroutine frames, the HTTP request with its
headers, a parser, queues and two timer handles alive for as long as a
socket is open: most of what an idle connection costs. chatd takes the
transport after the upgrade (chatd.edge.upgrade) and serves it here. Frames
are parsed by aiohttp's own reader (the same limits and close codes);
control frames are answered at once; data frames run one at a time, in
order, in a task that exists only while there is something to do. The
keep-alive is one timer for every socket (chatd.edge.heartbeat), and
nothing is allocated for a socket that waits but its state.

A ping is answered only while the transport holds at most `buffer_bytes`
unsent (the backlog past which the hub holds frames too): RFC 6455 lets an
endpoint answer only the latest ping, and a peer that pings but never reads
would otherwise make the server keep every pong.

Closing follows aiohttp's WebSocketResponse: our close frame, then theirs
(or `close_timeout_s`) before the transport closes; their close frame is
answered with 1000. Frames that came before a close or the end of the
stream are still served; what comes after our own close is not. asyncio's
close() waits until the peer has read what is unsent, which a peer that
does not read never does: a handshake that timed out, or a dropped socket,
aborts the transport, and any other close aborts it `close_timeout_s` later
if bytes are still waiting.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType

# The reader insists on its own queue type, so the socket is one: the reader calls
# feed_data/feed_eof/set_exception on it (tests/unit/edge/test_websocket.py pins this).
from aiohttp._websocket.reader import WebSocketDataQueue
from aiohttp.http_websocket import WebSocketError, WebSocketReader

from chatd.errors import CloseCode

if TYPE_CHECKING:
    from chatd.edge.heartbeat import Sockets

log = logging.getLogger("chatd.ws")

OPEN, CLOSING, CLOSED = 0, 1, 2  # CLOSING: a close frame is out, theirs awaited
BACKLOG_BYTES = 2 * 65536  # frames read but not served yet: past this, stop reading (as aiohttp)
_TEXT, _BINARY, _CLOSE, _PING = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CLOSE, WSMsgType.PING


def close_frame(code: int, reason: bytes = b"") -> bytes:
    payload = code.to_bytes(2, "big") + reason[:123]
    return bytes((0x88, len(payload))) + payload


class WebSocket(WebSocketDataQueue, asyncio.Protocol):
    """A server-side WebSocket on a transport of its own; subclasses serve its frames.

    `on_frame(data)` is awaited for each text (str) or binary (bytes) frame,
    never two at once; `on_end(code, how)` is called once, when the socket is
    no longer open and no frame is being served: how is "closed" (our close
    frame, `code`), "client" (theirs), "error" (a protocol error answered
    with `code`, or 1006: no pong) or "lost" (the stream ended, code None).
    """

    __slots__ = (
        "sockets",
        "transport",
        "reader",
        "state",
        "task",
        "backlog",
        "backlog_bytes",
        "idle",
        "timer",
        "end",
        "waiter",
    )
    # the Python reader (AIOHTTP_NO_EXTENSIONS) reads these on its queue; the compiled one its own fields
    _size = 0
    _limit = 1 << 62
    _stalled_reader = None

    def __init__(self, sockets: Sockets, transport: asyncio.Transport, max_msg_size: int) -> None:
        self.sockets = sockets
        self.transport = transport
        self.reader: WebSocketReader | None = WebSocketReader(self, max_msg_size, False, True)  # compress, decode_text
        self.state = OPEN
        self.task: asyncio.Task[None] | None = None  # serving frames; None while idle
        self.backlog: collections.deque[Any] | None = None  # read while busy: frames, their close, errors
        self.backlog_bytes = 0
        self.idle = 0  # heartbeat ticks without a byte from the peer
        self.timer: asyncio.TimerHandle | None = None  # the close handshake's timeout
        self.end: tuple[int | None, str] | None = None  # why it ends; `on_end` called: state is CLOSED and ...
        self.waiter: asyncio.Future[None] | None = None  # wait_closed(), made when asked for
        sockets.add(self)

    # --- what subclasses serve ----------------------------------------------------

    async def on_frame(self, data: str | bytes) -> None:
        raise NotImplementedError

    def on_end(self, code: int | None, how: str) -> None:
        pass

    # --- the transport's callbacks -----------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.idle = 0
        if self.reader is not None:
            self.reader.feed_data(data)

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost follows

    def connection_lost(self, exc: BaseException | None) -> None:
        self.reader = None
        self._closed()

    # --- the reader's callbacks (WebSocketDataQueue) ----------------------------------

    def feed_data(self, data: Any, size: int = 0) -> None:
        # a WSMessage: fields by name, whose order (and the size argument) aiohttp versions change
        kind = data.type
        if kind is _TEXT or kind is _BINARY:
            if self.state is not OPEN:
                return  # after our close frame only theirs matters
            if self.task is None:
                self.task = self.sockets.loop.create_task(self._serve(data.data))
            else:
                self._hold(data, len(data.data))
        elif kind is _PING:
            if self.transport.get_write_buffer_size() <= self.sockets.buffer_bytes:
                self.write(bytes((0x8A, len(data.data))) + data.data)
        elif kind is _CLOSE:
            if self.task is None or self.state is not OPEN:
                self._their_close(data.data)
            else:
                self._hold(data, 0)  # after the frames before it
        # a pong is only a sign of life (data_received)

    def feed_eof(self) -> None:
        pass  # connection_lost follows

    def set_exception(self, exc: BaseException, exc_cause: BaseException | None = None) -> None:
        if self.task is None or self.state is not OPEN:
            self._failed(exc)
        else:
            self._hold(exc, 0)

    # --- serving, one frame at a time ---------------------------------------------------

    def begin(self, job: Any) -> None:
        """Run the coroutine `job` before any frame (authentication with a token in the URL)."""
        self.task = self.sockets.loop.create_task(self._serve(None, job))

    def _hold(self, item: Any, size: int) -> None:
        if self.backlog is None:
            self.backlog = collections.deque()
        self.backlog.append(item)
        self.backlog_bytes += size + 128
        if self.backlog_bytes > BACKLOG_BYTES and self.reader is not None:
            self.transport.pause_reading()

    async def _serve(self, data: str | bytes | None, job: Any = None) -> None:
        try:
            if job is not None:
                await job
            else:
                assert data is not None
                await self.on_frame(data)
            while self.backlog:
                item = self.backlog.popleft()
                if isinstance(item, BaseException):
                    self._failed(item)
                elif item.type is _CLOSE:
                    self._their_close(item.data)
                else:
                    self.backlog_bytes -= len(item.data) + 128
                    if self.backlog_bytes < BACKLOG_BYTES // 2 and self.reader is not None:
                        self.transport.resume_reading()
                    await self.on_frame(item.data)
        except Exception:
            log.exception("connection failed")
            self.close(CloseCode.INTERNAL, b"internal error")
        finally:
            self.task = None
            self._drop_backlog()
            self._maybe_end()

    # --- closing ----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)

    def close(self, code: int, reason: bytes = b"") -> None:
        """Our close frame; the transport closes at their answer or after `close_timeout_s`.
        Frames not served yet are dropped."""
        if self.state is not OPEN:
            return
        self.state = CLOSING
        backlog = self.backlog
        answered = backlog is not None and any(isinstance(i, BaseException) or i.type is _CLOSE for i in backlog)
        self._drop_backlog()
        self.write(close_frame(code, reason))
        self._ending(code, "closed")
        if answered:  # their close frame (or a broken stream) came already
            self._gone()
        else:
            self.timer = self.sockets.loop.call_later(self.sockets.close_timeout_s, self._gone, True)

    def close_soon(self, code: int, reason: str = "") -> None:
        """close() on the next loop turn: frames queued for this socket go out before it."""
        self.sockets.loop.call_soon(self.close, code, reason.encode()[:120])

    def drop(self) -> None:
        """No pong in time: close the transport without a close frame (1006, as aiohttp)."""
        if self.state is OPEN:
            self._drop_backlog()
            self._ending(1006, "error")
            self._gone(True)

    def ping(self) -> None:
        self.write(b"\x89\x00")

    async def wait_closed(self) -> None:
        """Until the close handshake is over and on_end was called."""
        if self.state is CLOSED and self.end is not None and self.end[1] == "ended":
            return
        if self.waiter is None:
            self.waiter = self.sockets.loop.create_future()
        await self.waiter

    def _their_close(self, code: int) -> None:
        self._drop_backlog()  # nothing they sent after it is served
        if self.state is OPEN:
            self.write(close_frame(1000))
        self._ending(code, "client")
        self._gone()

    def _failed(self, exc: BaseException) -> None:
        """The reader stopped at an error, so their answer to our close cannot be read: closed now."""
        if self.state is OPEN:
            self.state = CLOSING
            self._drop_backlog()
            if isinstance(exc, WebSocketError):  # too large, bad UTF-8, a protocol error: told with its code
                self.write(close_frame(exc.code))
                self._ending(exc.code, "error")
            else:
                log.warning("reading a frame failed: %r", exc)
                self.write(close_frame(1000))
                self._ending(1006, "error")
        self._gone()

    def _drop_backlog(self) -> None:
        self.backlog = None
        if self.backlog_bytes > BACKLOG_BYTES and self.reader is not None:
            self.transport.resume_reading()  # their close frame is still to be read
        self.backlog_bytes = 0

    def _gone(self, abort: bool = False) -> None:
        """Close the transport: at once with `abort` (nothing more is owed to the peer),
        else when what is unsent has been read, or `close_timeout_s` from now."""
        transport = self.transport
        if abort:
            transport.abort()  # a no-op once the transport is gone
        elif not transport.is_closing():
            transport.close()
            if transport.get_write_buffer_size():
                self.sockets.loop.call_later(self.sockets.close_timeout_s, transport.abort)
        self._closed()

    def _closed(self) -> None:
        self.state = CLOSED
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.sockets.discard(self)
        self._ending(None, "lost")

    def _ending(self, code: int | None, how: str) -> None:
        if self.end is None:
            self.end = (code, how)
        self._maybe_end()

    def _maybe_end(self) -> None:
        end = self.end
        if self.task is not None or end is None or self.state is OPEN:
            return
        if end[1] != "ended":
            self.end = (end[0], "ended")
            self.on_end(*end)
        if self.state is CLOSED and (waiter := self.waiter) is not None and not waiter.done():
            waiter.set_result(None)
