"""The asyncio client: one WebSocket at a time, replaced when it drops.

A runner task reads frames and hands them to the bookkeeping in
`chatd.client.state`; when the socket closes it reconnects with backoff and
jitter, authenticates again (with a fresh token from the callable when the
old one was refused), rejoins every order from the last seq it handed out,
and writes again every request that got no reply: sends keep their
`client_id`, so the server stores each message exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any, Literal, cast

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection

from chatd import wire
from chatd.client.errors import (
    BadRequest,
    ChatdError,
    ClientClosed,
    ConnectionFailed,
    RateLimited,
    TooLarge,
    Unauthorized,
)
from chatd.client.handshake import TOO_BIG_CLOSE, UNAUTHORIZED_CLOSE, handshake, token_exp
from chatd.client.state import ACK, HISTORY, INBOX, JOINED, LEFT, PONG, READY, Request, Requests, Room
from chatd.client.urls import ws_url

log = logging.getLogger("chatd.client")
_JITTER = random.Random()  # its own state: the application's `random` is left alone

TokenSource = str | Callable[[], str] | Callable[[], Awaitable[str]]
Event = (
    wire.Message
    | wire.Joined
    | wire.Left
    | wire.TypingEvent
    | wire.Receipt
    | wire.Unread
    | wire.Presence
    | wire.OrderState
    | wire.ReplyState
    | wire.Notify
)

STABLE_S = 10.0  # a connection that lived this long resets the backoff
REJOIN_AT_ONCE = 50  # rooms rejoined at once on a new socket (below the read bucket's default burst, 60)
PACE_S, MAX_PACE_S = 0.5, 5.0  # after a read refused as rate_limited: the first wait, the longest
_END = object()  # ends iteration


def _state_key(ev: Any) -> tuple[Any, ...] | None:
    """What a newer event of the same kind replaces (None: every one counts)."""
    match ev:
        case wire.Unread() | wire.OrderState() | wire.ReplyState() | wire.Notify():
            return (type(ev), ev.order)
        case wire.TypingEvent():
            return (type(ev), ev.order, ev.user.id)
        case wire.Presence() | wire.Receipt():
            return (type(ev), ev.order, ev.user)
    return None


class Client:
    """A chatd connection that survives disconnects. Make one with `connect()`.

    Use it as `async with connect(url, token) as c:` (or `c = await
    connect(...)` and `await c.aclose()`), call the request methods, and
    iterate it for events: `async for event in c:` yields wire Structs
    (`Message`, `Joined`, `Left`, `TypingEvent`, `Receipt`, `Unread`,
    `Presence`, `OrderState`, `ReplyState`, `Notify`). Messages of joined orders come in
    `seq` order, each once, across reconnects. One consumer should iterate;
    events are queued until it does.
    """

    def __init__(
        self,
        url: str,
        token: TokenSource,
        *,
        reconnect: bool = True,
        retry_initial: bool = False,
        reconnect_delay_s: float = 0.25,
        max_reconnect_delay_s: float = 15.0,
        reconnect_timeout_s: float | None = None,
        open_timeout_s: float = 10.0,
        max_frame_bytes: int = 65536,
        typing_interval_s: float = 3.0,
        max_queued_events: int = 10_000,
    ) -> None:
        self.url = ws_url(url)
        self.user: wire.UserRef | None = None  # who the server says we are (from `ready`)
        self.reconnects = 0  # how many times a lost connection was replaced
        self._token_source = token
        self._token: str | None = token if isinstance(token, str) else None
        self._token_stale = False  # the server refused the cached token
        self._reconnect = reconnect
        self._retry_initial = retry_initial
        self._delay = reconnect_delay_s
        self._max_delay = max_reconnect_delay_s
        self._give_up_s = reconnect_timeout_s
        self._open_timeout = open_timeout_s
        self._max_frame = max_frame_bytes
        self._typing_interval = typing_interval_s

        self._ws: ClientConnection | None = None
        self._conn_no = 0
        self._open = False  # requests go out as they are made
        self._opened_at = 0.0
        self._attempt = 0
        self._wlock = asyncio.Lock()  # the table's order is the order on the wire
        self._auth_lock = asyncio.Lock()
        self._requests = Requests()
        self._rooms: dict[str, Room] = {}
        self._fills: dict[str, asyncio.Task[None]] = {}
        self._inbox = False
        self._events: asyncio.Queue[Any] = asyncio.Queue()  # events, then _END
        # Messages waiting for the application are bounded: past the bound a
        # room's messages are dropped, and once the application has read half
        # of what waits, the room is rejoined from its last delivered seq.
        self._max_queued = max_queued_events
        self._overflowed: set[str] = set()
        self._rejoins: set[asyncio.Task[None]] = set()
        self._paced: dict[str, None] = {}  # rooms to rejoin one at a time, in order (`_pace_rejoins`)
        self._latest: dict[tuple[Any, ...], Any] = {}  # state events held while the queue is full: the newest of each
        self._drained = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._closed = False  # no more requests: closed by the user or given up
        self._closing = False  # aclose() ran
        self._fatal: ChatdError | None = None

    # --- lifecycle ---------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self._start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __await__(self) -> Generator[Any, None, Client]:
        return self._start_and_return().__await__()

    async def _start_and_return(self) -> Client:
        await self._start()
        return self

    async def _start(self) -> None:
        if self._runner is not None:
            return
        try:
            ws, ready = await self._open_connection()
        except ConnectionFailed:
            if not self._retry_initial:
                raise
            ws, ready = await self._reconnect_loop()
        self.user = ready.user
        self._ws = ws
        await self._resume()
        self._runner = asyncio.create_task(self._run(ws), name="chatd-client")
        if not isinstance(self._token_source, str):
            self._refresher = asyncio.create_task(self._keep_token_fresh(), name="chatd-client-token")

    @property
    def queued(self) -> int:
        """Events waiting for `async for`: at most about `max_queued_events`
        (more messages wait on the server and are replayed in order)."""
        return self._events.qsize()

    @property
    def connected(self) -> bool:
        """Whether a socket is up and requests go straight out."""
        return self._open

    async def aclose(self) -> None:
        """Close the socket and end iteration; requests still waiting fail with
        `ClientClosed`. Idempotent."""
        if self._closing:
            return
        self._closing = self._closed = True
        self._open = False
        tasks = [t for t in (self._runner, self._refresher, *self._fills.values(), *self._rejoins) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()
        self._fail_requests(self._fatal or ClientClosed("the client is closed"))
        self._events.put_nowait(_END)

    def _fail_requests(self, exc: ChatdError) -> None:
        for req in self._requests.take_all():
            if req.waiter is not None and not req.waiter.done():
                req.waiter.set_exception(exc)

    def _give_up(self, exc: ChatdError) -> None:
        """A fatal error: fail every request and end iteration with it."""
        self._fatal = exc
        self._closed = True
        self._open = False
        for t in self._fills.values():
            t.cancel()
        self._fail_requests(exc)
        self._events.put_nowait(_END)

    # --- events --------------------------------------------------------------

    def __aiter__(self) -> Client:
        return self

    async def __anext__(self) -> Event:
        ev: Event = await self._events.get()
        if self._events.qsize() <= self._max_queued // 2:
            self._drained.set()
            latest, self._latest = self._latest, {}
            for held in latest.values():
                self._events.put_nowait(held)
            if self._overflowed:
                self._rejoin_overflowed()
        if ev is _END:
            self._events.put_nowait(_END)  # every later call ends too
            if self._fatal is not None:
                raise self._fatal
            raise StopAsyncIteration
        return ev

    def _emit(self, ev: Any) -> None:
        if self._events.qsize() >= self._max_queued and (key := _state_key(ev)) is not None:
            self._latest.pop(key, None)
            self._latest[key] = ev  # only the newest state matters; it comes once the reader catches up
            return
        self._events.put_nowait(ev)

    # --- requests -------------------------------------------------------------

    async def join(self, order: str, since: int | None = None, limit: int | None = None) -> wire.Joined:
        """Receive the order's events; replays messages after `since` (or the
        newest few without it). Rejoined with the right `since` after every
        reconnect, until `leave`. Joining a joined order again without `since`
        goes on from the last message handed out."""
        await self._refresh_auth_if_expired()
        room = self._rooms.get(order)
        created = room is None
        resume = False
        if room is None:
            room = self._rooms[order] = Room(order)
        elif since is None and room.synced:
            since, resume = room.resume_since(), True  # "make sure I am joined": no gap, no repeat
        try:
            return cast(wire.Joined, await self._request(wire.Join(order, since, limit), JOINED, resume=resume))
        except ChatdError:
            if created and self._rooms.get(order) is room:
                del self._rooms[order]
            raise

    async def leave(self, order: str) -> wire.Left:
        self._rooms.pop(order, None)
        self._stop_fill(order)
        return cast(wire.Left, await self._request(wire.Leave(order), LEFT))

    async def send(
        self,
        order: str,
        text: str,
        kind: Literal["text", "note"] = "text",
        client_id: str | None = None,
        attachments: list[str] | None = None,
    ) -> wire.Ack:
        """Post a message; returns the `ack` once it is stored (`duplicate` if
        this `client_id` was stored before). Survives reconnects."""
        frame = wire.Send(order, client_id or str(uuid.uuid4()), text, kind, attachments or [])
        return cast(wire.Ack, await self._request(frame, ACK))

    async def set_status(
        self, order: str, status: str, text: str | None = None, client_id: str | None = None
    ) -> wire.Ack:
        """Change the order's status (supplier, staff, bot); posts a `status` message."""
        return cast(
            wire.Ack, await self._request(wire.SetStatus(order, status, client_id or str(uuid.uuid4()), text), ACK)
        )

    async def dispute(
        self, order: str, action: Literal["open", "close"], reason: str | None = None, client_id: str | None = None
    ) -> wire.Ack:
        """Open or close the order's dispute; posts a `dispute` message."""
        return cast(
            wire.Ack, await self._request(wire.Dispute(order, action, client_id or str(uuid.uuid4()), reason), ACK)
        )

    async def read(self, order: str, seq: int) -> None:
        """Move this user's read marker forward to `seq`."""
        await self._request(wire.Read(order, seq), PONG)

    async def history(
        self, order: str, before: int | None = None, after: int | None = None, limit: int | None = None
    ) -> wire.HistoryPage:
        return cast(wire.HistoryPage, await self._request(wire.History(order, before, after, limit), HISTORY))

    async def inbox(
        self, limit: int | None = None, cursor: str | None = None, only: list[str] | None = None
    ) -> wire.InboxPage:
        """The user's orders (with `only`, those of them alone); also subscribes this
        client to `Notify` events (kept across reconnects)."""
        self._inbox = True
        return cast(wire.InboxPage, await self._request(wire.Inbox(limit, cursor, only), INBOX))

    async def ping(self) -> None:
        """Round trip: every request made before it has been handled."""
        await self._request(wire.Ping(), PONG)

    @contextlib.asynccontextmanager
    async def typing(self, order: str) -> AsyncIterator[None]:
        """Show this user typing in `order` while the block runs (refreshed
        every few seconds), and stop it at the end. The order must be joined."""
        await self._request(wire.Typing(order, True), PONG)
        keeper = asyncio.create_task(self._keep_typing(order))
        try:
            yield
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            if not self._closed:
                await self._request(wire.Typing(order, False), PONG, wait=False)

    async def _keep_typing(self, order: str) -> None:
        while True:
            await asyncio.sleep(self._typing_interval)
            await self._request(wire.Typing(order, True), PONG, wait=False)

    async def _request(self, frame: Any, expect: str, wait: bool = True, resume: bool = False) -> Any:
        if self._closed:
            raise self._fatal or ClientClosed("the client is closed")
        size = len(_encode(frame))  # a frame that cannot go out must not wait in the table
        if isinstance(frame, (wire.Send, wire.SetStatus, wire.Dispute)) and size > self._max_frame:
            raise TooLarge(f"the frame is larger than {self._max_frame} bytes", ref=frame.client_id)
        waiter = asyncio.get_running_loop().create_future() if wait else None
        # Typing is only worth sending now; everything else is written again after a reconnect.
        req = Request(frame, expect, waiter, resend=not isinstance(frame, wire.Typing))
        req.resume = resume
        try:
            async with self._wlock:
                if not self._open and not req.resend:
                    return None
                self._requests.add(req)
                if self._open:
                    await self._write(req)
            if waiter is None:
                return None
            return await waiter
        except asyncio.CancelledError:
            if waiter is not None:
                waiter.cancel()  # a late reply is dropped, and it is not sent again
            if req.sent_on != self._conn_no or not self._open:
                self._requests.remove(req)  # no reply can come for it
            raise

    async def _write(self, req: Request) -> None:
        """Write a request on the current socket; a closed socket is the
        runner's business (it resends after reconnecting)."""
        ws = self._ws
        assert ws is not None, "set by _start, before any request is written"
        req.sent_on = self._conn_no
        try:
            for f in req.frames():
                await ws.send(_encode(f), text=True)
        except websockets.ConnectionClosed:
            pass

    async def _refresh_auth_if_expired(self, within_s: float = 1.0) -> None:
        """The server closes the socket (4401) when the token it holds expires,
        so hand it a fresh one first when we can (before a join, and in time)."""
        if isinstance(self._token_source, str):
            return
        async with self._auth_lock:
            exp = token_exp(self._token)
            if exp is None or exp - time.time() > within_s:
                return
            token = await self._get_token(fresh=True)
            await self._request(wire.Auth(token), READY)

    async def _keep_token_fresh(self) -> None:
        """Refresh the token a little before it expires (a fifth of what is
        left when armed, between 1 s and a minute), for as long as the client runs."""
        while not self._closed:
            exp = token_exp(self._token)
            if exp is None:
                return
            margin = min(60.0, max(1.0, (exp - time.time()) * 0.2))
            await asyncio.sleep(max(0.0, exp - margin - time.time()))
            if not self._open:
                await asyncio.sleep(0.1)  # a reconnect authenticates with a token of its own
                continue
            try:
                await self._refresh_auth_if_expired(within_s=margin)
            except ChatdError as exc:
                log.warning("token refresh failed: %s", exc)
                await asyncio.sleep(1.0)
            except Exception as exc:  # noqa: BLE001 - the caller's token function
                log.warning("the token function failed: %r", exc)
                await asyncio.sleep(1.0)

    async def _get_token(self, fresh: bool) -> str:
        src = self._token_source
        if isinstance(src, str):
            return src
        if self._token is None or fresh:
            token = src()
            if inspect.isawaitable(token):
                token = await token
            self._token = token
        return self._token

    # --- frames in ---------------------------------------------------------------

    def _on_frame(self, raw: str | bytes) -> None:
        try:
            frame = wire.server_decoder.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            log.debug("ignoring a frame this client does not know: %s", exc)
            return
        match frame:
            case wire.Message():
                room = self._rooms.get(frame.order)
                if room is None or room.overflow:
                    return  # an overflowed room's rejoin replays it
                waiting = self._events.qsize() if room.buffer is None else len(room.buffer)
                if waiting >= self._max_queued:  # the same bound while a gap is being filled
                    room.overflow = True
                    self._overflowed.add(room.order)
                    self._drained.clear()
                    return
                if room.offer(frame):
                    self._emit(frame)
            case wire.Joined():
                req = self._reply(frame)
                room = self._rooms.get(frame.order)
                if room is not None:
                    since = req.frame.since if req is not None else None
                    self._stop_fill(frame.order)
                    if room.joined(frame, since, resume=req is not None and req.resume):
                        self._fills[frame.order] = asyncio.create_task(self._fill(room))
                    self._emit(frame)
            case wire.Left():
                if frame.reason == "leave":
                    self._reply(frame)
                else:
                    self._rooms.pop(frame.order, None)
                    self._stop_fill(frame.order)
                self._emit(frame)
            case wire.Ack() | wire.ErrorFrame() | wire.Pong() | wire.HistoryPage() | wire.InboxPage() | wire.Ready():
                self._reply(frame)
            case _:
                self._emit(frame)

    def _reply(self, frame: Any) -> Request | None:
        found = self._requests.match(frame)
        if found is None:
            if isinstance(frame, wire.ErrorFrame) and not self._requests.holds(frame):
                log.warning("error from chatd: %s: %s (ref %s)", frame.code, frame.message, frame.ref)
            return None
        req, outcome = found
        w = req.waiter
        if w is not None and not w.done():
            if isinstance(outcome, ChatdError):
                w.set_exception(outcome)
            else:
                w.set_result(outcome)
        return req

    # --- the bound on waiting events --------------------------------------------

    def _rejoin_overflowed(self) -> None:
        """The application caught up: rejoin each overflowed room from the last
        message it was given (on a new socket `_resume` does that anyway)."""
        if not self._open:
            self._overflowed = set()
            return
        orders = {o for o in self._overflowed if o not in self._fills}  # those rejoin once filled
        self._overflowed -= orders
        for order in orders:
            room = self._rooms.get(order)
            if room is not None and room.overflow:
                task = asyncio.create_task(self._rejoin(room))
                self._rejoins.add(task)
                task.add_done_callback(self._rejoins.discard)

    async def _rejoin(self, room: Room) -> None:
        req = self._internal(wire.Join(room.order, room.resume_since()), JOINED)
        async with self._wlock:
            if self._open:
                self._requests.add(req)
                await self._write(req)

    async def _space(self) -> None:
        """Wait until the application has read enough of what waits."""
        while self._events.qsize() >= self._max_queued:
            self._drained.clear()
            await self._drained.wait()

    # --- gaps: a truncated replay is completed from history ------------------------

    def _stop_fill(self, order: str) -> None:
        task = self._fills.pop(order, None)
        if task is not None:
            task.cancel()

    async def _fill(self, room: Room) -> None:
        """Page history from the last seq handed out up to the first replayed
        one, then release the messages that waited."""
        order = room.order
        cursor = room.delivered
        wait = PACE_S
        try:
            while True:
                await self._space()
                try:
                    page = await self.history(order, after=cursor, limit=200)
                except RateLimited:  # the read bucket: asked again, or the gap would be skipped
                    await asyncio.sleep(wait)
                    wait = min(wait * 2, MAX_PACE_S)
                    continue
                wait = PACE_S
                stop = room.fill_stop()  # the replay arrived before this answer
                done = not page.has_more or not page.messages
                for m in page.messages:
                    if stop is not None and m.seq >= stop:
                        done = True
                        break
                    if room.take(m):
                        self._emit(m)
                    cursor = m.seq
                if done:
                    break
        except ChatdError as exc:
            log.warning("could not fill the gap in %s from history: %s", order, exc)
        if self._fills.get(order) is asyncio.current_task():
            del self._fills[order]
        if self._rooms.get(order) is room:
            for m in room.fill_done():
                self._emit(m)
            if room.overflow and self._events.qsize() <= self._max_queued // 2:
                self._rejoin_overflowed()  # the reader is not behind: nothing else would

    # --- the connection ---------------------------------------------------------

    async def _open_connection(self) -> tuple[ClientConnection, wire.Ready]:
        """Connect and authenticate; a refused token is replaced once by the callable."""
        fresh = self._token_stale
        while True:
            try:
                token = await self._get_token(fresh)
            except Exception as exc:  # noqa: BLE001 - the caller's function: retried like a network error
                raise ConnectionFailed(f"the token function failed: {exc!r}", self.url) from exc
            opened = await handshake(self.url, token, self._open_timeout)
            if not isinstance(opened, Unauthorized):
                self._token_stale = False
                return opened
            if isinstance(self._token_source, str) or fresh:
                raise opened  # the server's reason, e.g. "token expired"; InvalidSignature: another secret
            fresh = True

    async def _resume(self) -> None:
        """On a fresh socket: rejoin, resubscribe, and write every request that
        is still waiting, in their original order, before anything new."""
        async with self._wlock:
            self._conn_no += 1
            # typing is stale by now, and nobody waits for a cancelled request
            old = [r for r in self._requests.take_all() if r.resend and (r.waiter is None or not r.waiter.done())]
            joining = {r.order for r in old if r.expect == JOINED}
            todo: list[Request] = []
            self._paced = {}
            for order, room in self._rooms.items():
                if order in joining:
                    continue
                if len(todo) < REJOIN_AT_ONCE:
                    todo.append(self._internal(wire.Join(order, room.resume_since()), JOINED))
                else:  # more at once would be refused by the read bucket, and enough refusals close 4429
                    self._paced[order] = None
            if self._inbox and not any(r.expect == INBOX for r in old):
                todo.append(self._internal(wire.Inbox(limit=1), INBOX))
            for r in old:
                if r.expect != JOINED or r.order is None:
                    continue
                joined = self._rooms.get(r.order)
                if joined is not None and joined.delivered and r.frame.since is None:
                    r.frame = wire.Join(r.order, joined.resume_since(), r.frame.limit)  # no gap after the outage
                    r.resume = True
            for req in todo + old:
                self._requests.add(req)
                await self._write(req)
            self._open = True
            self._opened_at = time.monotonic()
        if self._paced:
            self._start_pacer()

    def _internal(self, frame: Any, expect: str) -> Request:
        """A request the client makes for itself; a refused rejoin means the
        order is gone for this user (as if removed), unless the read bucket
        refused it for now: then it is asked again, paced."""
        fut = asyncio.get_running_loop().create_future()
        order = getattr(frame, "order", None)

        def done(f: asyncio.Future[Any]) -> None:
            if f.cancelled():
                return
            exc = f.exception()
            if exc is not None and isinstance(frame, wire.Join) and order in self._rooms:
                if isinstance(exc, RateLimited):
                    self._paced[order] = None
                    self._start_pacer()
                    return
                log.warning("cannot rejoin %s: %s", order, exc)
                del self._rooms[order]
                self._emit(wire.Left(order, "removed"))

        fut.add_done_callback(done)
        req = Request(frame, expect, fut)
        req.resume = isinstance(frame, wire.Join)
        return req

    def _start_pacer(self) -> None:
        if self._open and not any(t.get_name() == "chatd-client-pacer" for t in self._rejoins):
            task = asyncio.create_task(self._pace_rejoins(), name="chatd-client-pacer")
            self._rejoins.add(task)  # cancelled with the socket: `_resume` rejoins every room
            task.add_done_callback(self._rejoins.discard)

    async def _pace_rejoins(self) -> None:
        """Rejoin the rooms in `_paced` one at a time, each after the answer to the
        last; after a `rate_limited` wait, longer each time in a row (the server
        closes 4429 after `rate_abuse_closes` refusals in a row)."""
        wait = PACE_S
        while self._paced:
            order = next(iter(self._paced))
            del self._paced[order]
            room = self._rooms.get(order)
            if room is None:
                continue
            req = self._internal(wire.Join(order, room.resume_since()), JOINED)
            async with self._wlock:
                if not self._open:
                    return
                self._requests.add(req)
                await self._write(req)
            try:
                await req.waiter
                wait = PACE_S
            except RateLimited:  # back in `_paced`, at its end
                await asyncio.sleep(wait)
                wait = min(wait * 2, MAX_PACE_S)
            except ChatdError:
                pass  # the room is gone (`_internal`)

    async def _run(self, ws: ClientConnection) -> None:
        try:
            while True:
                await self._serve(ws)
                if self._closed:
                    return
                if not self._reconnect:
                    raise ClientClosed("the connection closed (reconnect is off)")
                ws, ready = await self._reconnect_loop()
                self._ws, self.user = ws, ready.user  # aclose() closes it from here on
                self.reconnects += 1
                await self._resume()
        except ChatdError as exc:
            log.error("chatd client stops: %s", exc)
            self._give_up(exc)
        except Exception as exc:
            log.exception("chatd client failed")
            self._give_up(ClientClosed(f"the client failed: {exc!r}"))

    async def _serve(self, ws: ClientConnection) -> None:
        """Read frames until the socket closes."""
        try:
            async for raw in ws:
                self._on_frame(raw)
        except websockets.ConnectionClosed:
            pass
        self._open = False
        for order in list(self._fills):
            self._stop_fill(order)
        for task in list(self._rejoins):
            task.cancel()  # `_resume` rejoins every room
        for room in self._rooms.values():
            room.buffer = None
        code = ws.close_code
        if code == UNAUTHORIZED_CLOSE:
            self._token_stale = True
        if ws.protocol.close_rcvd_then_sent and code == TOO_BIG_CLOSE:
            self._fail_too_big()
        if time.monotonic() - self._opened_at >= STABLE_S:
            self._attempt = 0
        if not self._closed:
            log.info("disconnected from %s (close code %s); reconnecting", self.url, code)

    def _fail_too_big(self) -> None:
        """The server closed 1009 over a frame past its `max_frame_bytes`: fail
        that request rather than write it again on every new socket. The
        largest unanswered frame written on the socket is at least as large
        as the one the server refused."""
        sent = [r for r in self._requests.items if r.sent_on == self._conn_no]
        if not sent:
            return
        req = max(sent, key=lambda r: len(_encode(r.frame)))
        self._requests.remove(req)
        if req.waiter is not None and not req.waiter.done():
            msg = f"the server closed the connection over a {type(req.frame).__name__} frame too large for it (1009)"
            req.waiter.set_exception(TooLarge(msg, ref=req.client_id or req.order))

    async def _reconnect_loop(self) -> tuple[ClientConnection, wire.Ready]:
        """Connect again with exponential backoff and jitter, until it works,
        the token is refused for good, or `reconnect_timeout_s` passes."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            base = min(self._max_delay, self._delay * (2 ** min(self._attempt, 16)))
            await asyncio.sleep(base * _JITTER.uniform(0.5, 1.0))
            self._attempt += 1
            try:
                ws, ready = await self._open_connection()
            except ConnectionFailed as exc:
                if self._give_up_s is not None and loop.time() - started > self._give_up_s:
                    raise ClientClosed(f"gave up reconnecting after {self._give_up_s:g}s: {exc.message}") from exc
                log.debug("reconnect attempt %d failed: %s", self._attempt, exc)
                continue
            log.info("reconnected to %s", self.url)
            return ws, ready


def _encode(frame: Any) -> bytes:
    """The frame as it goes out, or `BadRequest` for one that cannot (a lone
    surrogate in a string, an integer past 64 bits)."""
    try:
        return wire.encode(frame)
    except (ValueError, OverflowError, TypeError, msgspec.EncodeError) as exc:
        ref = getattr(frame, "client_id", None) or getattr(frame, "order", None)
        raise BadRequest(f"cannot encode the {type(frame).__name__} frame: {exc}", ref=ref) from exc


def connect(url: str, token: TokenSource, **options: Any) -> Client:
    """A client for the chatd at `url` (`http://host:port` or `ws://host:port/ws`).

    `token` is a connection token, or a function (plain or async) that returns
    a fresh one; it is called again whenever the server refuses the current
    token (expired). Use as `async with connect(...) as c:` or `c = await
    connect(...)`. See `Client` for the options.
    """
    return Client(url, token, **options)
