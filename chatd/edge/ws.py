"""The WebSocket edge: authenticate, decode, dispatch to `Chat`, map errors.

Each connection is a `ChatSocket` (chatd.edge.websocket: frames in order,
one at a time, with no task while it waits); everything it sends goes
through the hub's outbound path, so a reply never overtakes a broadcast.
"""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec
from aiohttp import web

from chatd import logs, metrics, wire
from chatd.auth import permissions
from chatd.auth.tokens import verify
from chatd.chat import Chat, Disconnect, actor_of
from chatd.config import Config, LimitsConfig
from chatd.edge import upgrade
from chatd.edge.endpoint import Endpoint
from chatd.edge.keys import ENDPOINT
from chatd.edge.websocket import WebSocket
from chatd.errors import ChatError, CloseCode, RateLimited, Unauthorized
from chatd.rooms.hub import Bucket, Conn
from chatd.staff_queue import StaffQueue

log = logging.getLogger("chatd.ws")


async def handle(request: web.Request) -> web.StreamResponse:
    ep = request.app[ENDPOINT]
    await upgrade.check(request)
    token = request.query.get("token")
    remote = request.remote or ""
    access = logs.SocketLine(request) if ep.request_lines else None

    def make(transport: asyncio.Transport) -> ChatSocket:
        sock = ChatSocket(ep, transport, access)
        sock.peer = _waiting_for_auth(ep, remote)
        if sock.peer is None:
            sock.close(CloseCode.TOO_MANY, b"too many unauthenticated connections")
        elif token is not None:
            sock.begin(sock.start(token))  # frames wait behind it
        else:
            sock.deadline = ep.sockets.loop.call_later(ep.limits.auth_timeout_s, sock.no_auth_in_time)
        return sock

    upgrade.take(request, make)
    return upgrade.Detached()


async def close_all(app: web.Application) -> None:
    """Shutdown: every open WebSocket is closed with 1001 (reconnect elsewhere)."""
    ep = app[ENDPOINT]
    ep.chat.closing = True
    sockets = [*ep.sockets.open]
    for sock in sockets:
        sock.close(CloseCode.GOING_AWAY, b"server shutting down")
    if sockets:
        waits = [asyncio.ensure_future(sock.wait_closed()) for sock in sockets]
        _, late = await asyncio.wait(waits, timeout=ep.cfg.server.shutdown_timeout_s)
        for w in late:
            w.cancel()
        stuck = [sock.task for sock in sockets if sock.task is not None]
        for task in stuck:
            task.cancel()
        await asyncio.gather(*stuck, return_exceptions=True)
    ep.sockets.stop()


class ChatSocket(WebSocket):
    """One client's connection: an `auth` (or ?token=) first, then its frames for the chat service."""

    __slots__ = ("ep", "conn", "peer", "deadline", "access")

    def __init__(self, ep: Endpoint, transport: asyncio.Transport, access: logs.SocketLine | None) -> None:
        # aiohttp's reader refuses a frame of max_msg_size; ours passes
        super().__init__(ep.sockets, transport, ep.limits.max_frame_bytes + 1)
        self.ep = ep
        self.conn: Conn | None = None  # once authenticated and admitted
        self.peer: str | None = None  # the address this socket counts against until it authenticates
        self.deadline: asyncio.TimerHandle | None = None  # no auth frame by then: 4401
        self.access = access  # the request line, written when the socket ends (JSON logs)

    async def on_frame(self, data: str | bytes) -> None:
        conn = self.conn
        if conn is None:
            await self._first(data)
            return
        if conn.closed:  # by the hub (1013, 4401 at exp): its close frame is on the way
            return
        logs.USER.set(conn.ident.id)
        ep = self.ep
        try:
            await _dispatch(ep.chat, ep.queue, conn, data, ep.cfg)
        except Disconnect as d:
            self.close(d.code, d.reason.encode()[:120])
            return
        if conn.out is not None:
            # let the hub write the answer before the next buffered frame is
            # read, so that only what the socket refuses counts as held
            await asyncio.sleep(0)

    async def _first(self, data: str | bytes) -> None:
        """The first frame must be a valid `auth` by `auth_timeout_s` after the upgrade. The
        deadline is absolute: pings and pongs do not move it."""
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        try:
            first = wire.decode_json(data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            first = None
        if not isinstance(first, wire.Auth):
            self._authenticated()
            self.write(wire.encode_frame(wire.ErrorFrame("unauthorized", "the first frame must be auth")))
            self.close(CloseCode.UNAUTHORIZED, b"auth first")
            return
        await self.start(first.token)

    async def start(self, token: str) -> None:
        ep = self.ep
        try:
            ident = verify(token, ep.cfg.auth.secret, filter_mode=ep.cfg.filter.mode)
        except Unauthorized as exc:
            self.write(wire.encode_frame(wire.ErrorFrame(exc.code, exc.message)))
            reason = b"token signed with another secret" if exc.code == "invalid_signature" else b"invalid token"
            self.close(CloseCode.UNAUTHORIZED, reason)
            return
        finally:
            self._authenticated()
        if self.access is not None:
            self.access.about(ident.id)
        logs.USER.set(ident.id)
        chat = ep.chat
        if not await chat.admit(ident.id):
            self.close(CloseCode.TOO_MANY, b"too many connections")
            return
        conn = self.conn = Conn(ident, self.transport, self.close_soon)  # closes the hub asks for (1013, 4401 at exp)
        chat.hub.add_conn(conn)
        chat.arm_expiry(conn)
        limits = ep.limits
        chat.hub.send(
            conn, wire.encode_frame(wire.Ready(wire.UserRef(ident.id, ident.name, ident.role), limits.heartbeat_s))
        )

    def no_auth_in_time(self) -> None:
        self.deadline = None
        if self.conn is None and self.task is None:
            self.write(wire.encode_frame(wire.ErrorFrame("unauthorized", "no auth frame in time")))
            self.close(CloseCode.UNAUTHORIZED, b"no auth in time")

    def _authenticated(self) -> None:
        """It no longer counts against its address's `max_unauthenticated_per_ip`."""
        peer, self.peer = self.peer, None
        if peer is not None:
            waiting = self.ep.unauthenticated
            n = waiting.get(peer, 0) - 1
            if n > 0:
                waiting[peer] = n
            else:
                waiting.pop(peer, None)

    def on_end(self, code: int | None, how: str) -> None:
        try:
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None
            self._authenticated()
            conn = self.conn
            if how == "closed" or (conn is not None and how != "lost"):
                metrics.closed(code, "client" if how == "client" else "server")
            if conn is not None:
                self.conn = None  # no cycle through conn.closer: freed without the collector
                self.ep.chat.went_away(conn)
            if self.access is not None:
                self.access.write()
        except Exception:
            log.exception("closing a connection failed")


def _waiting_for_auth(ep: Endpoint, peer: str) -> str | None:
    """Count a socket against its remote address until it authenticates
    (each may be held for `auth_timeout_s`); None if that address has
    `max_unauthenticated_per_ip` waiting already."""
    waiting = ep.unauthenticated
    n = waiting.get(peer, 0)
    if n >= ep.limits.max_unauthenticated_per_ip:
        return None
    waiting[peer] = n + 1
    return peer


def _take_token(conn: Conn, limits: LimitsConfig, reading: bool = False) -> None:
    """Token buckets per connection, one for posting frames (the default) and
    one for reads (`conn.reading`), made at their first use; staff and bots
    are exempt. Rate-limited answers in a row, of either kind, past
    `rate_abuse_closes` close 4429."""
    if conn.ident.role in permissions.RATE_EXEMPT:
        return
    now = time.monotonic()
    if reading:
        bucket = conn.reading or Bucket(limits.read_rate_per_s, limits.read_burst, now)
        conn.reading = bucket
    else:
        bucket = conn.posting or Bucket(limits.rate_per_s, limits.rate_burst, now)
        conn.posting = bucket
    if bucket.take(now):
        conn.strikes = 0
        return
    conn.strikes += 1
    if conn.strikes > limits.rate_abuse_closes:
        raise Disconnect(CloseCode.TOO_MANY, "rate limit abused")
    raise RateLimited("too many reads; slow down" if reading else "too many messages; slow down")


PONG = wire.encode_frame(wire.Pong())


def _error(exc: ChatError) -> bytes:
    return wire.encode_frame(wire.ErrorFrame(exc.code, exc.message, exc.ref))


async def _dispatch(chat: Chat, queue: StaffQueue, conn: Conn, data: str | bytes, cfg: Config) -> None:
    send = chat.hub.send
    limits = cfg.limits
    frame = None
    try:
        frame = wire.decode_json(data)
        match frame:
            case wire.Send():
                _take_token(conn, limits)
                ack = await chat.send(
                    actor_of(conn.ident), frame.order, frame.client_id, frame.text, frame.kind, frame.attachments
                )
                send(conn, wire.encode_frame(ack))
            case wire.Typing():
                await chat.typing(conn, frame.order, frame.active, frame.note)
            case wire.Read():
                await chat.read(conn, frame.order, frame.seq)
            case wire.Join():
                _take_token(conn, limits, reading=True)
                await chat.join(conn, frame.order, frame.since, frame.limit)
            case wire.Leave():
                chat.leave(conn, frame.order)
            case wire.History():
                _take_token(conn, limits, reading=True)
                page = await chat.messages_page(conn.ident, frame.order, frame.before, frame.after, frame.limit)
                send(conn, wire.encode_frame(page))
            case wire.Inbox():
                _take_token(conn, limits, reading=True)
                send(conn, wire.encode_frame(await chat.inbox(conn, frame.limit, frame.cursor, frame.only)))
            case wire.SetStatus():
                _take_token(conn, limits)
                ack = await chat.set_status(
                    actor_of(conn.ident), frame.order, frame.status, frame.client_id, frame.text
                )
                send(conn, wire.encode_frame(ack))
            case wire.Dispute():
                _take_token(conn, limits)
                ack = await chat.dispute(actor_of(conn.ident), frame.order, frame.action, frame.client_id, frame.reason)
                send(conn, wire.encode_frame(ack))
            case wire.NoReplyNeeded():
                _take_token(conn, limits)
                await chat.no_reply_needed(conn, frame.order, frame.seq)
            case wire.Help():
                _take_token(conn, limits)
                send(
                    conn,
                    wire.encode_frame(await chat.help(actor_of(conn.ident), frame.order, frame.client_id, frame.text)),
                )
            case wire.Resolve():
                _take_token(conn, limits)
                await queue.resolve(conn.ident, frame.order)
            case wire.Follow() | wire.Unfollow():
                _take_token(conn, limits)
                await queue.follow(conn.ident, frame.order, isinstance(frame, wire.Follow))
            case wire.Ping():
                send(conn, PONG)
            case wire.Auth():
                ident = verify(frame.token, cfg.auth.secret, filter_mode=cfg.filter.mode)
                if ident.id != conn.ident.id or ident.role != conn.ident.role:
                    raise Unauthorized("a refreshed token must be for the same user and role")
                send(
                    conn,
                    wire.encode_frame(wire.Ready(wire.UserRef(ident.id, ident.name, ident.role), limits.heartbeat_s)),
                )
                await chat.reauth(conn, ident)  # leaves the rooms it no longer covers
    except ChatError as exc:
        # a posting frame's error names its client_id (what the client waits on), even
        # when the store named the order (not_found): one answer per pending send
        cid = getattr(frame, "client_id", None)
        if cid or exc.ref is None:
            exc.ref = cid or getattr(frame, "order", None)
        send(conn, _error(exc))
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        send(conn, wire.encode_frame(wire.ErrorFrame("bad_request", f"invalid frame: {exc}", wire.ref_of(data))))
