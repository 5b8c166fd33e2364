"""The WebSocket edge: authenticate, decode, dispatch to `Chat`, map errors.

One coroutine per connection reads frames in order; everything it sends goes
through the hub's outbound path, so a reply never overtakes a broadcast.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from chatd import logs, metrics, wire
from chatd.auth import permissions
from chatd.auth.tokens import Identity, verify
from chatd.chat import Chat, Disconnect, actor_of
from chatd.config import Config, LimitsConfig
from chatd.edge.keys import CHAT, CONFIG, QUEUE, SOCKETS, UNAUTHENTICATED
from chatd.errors import ChatError, CloseCode, RateLimited, Unauthorized
from chatd.rooms.hub import Bucket, Conn
from chatd.staff_queue import StaffQueue

log = logging.getLogger("chatd.ws")
_tasks: set[asyncio.Task[None]] = set()


def _spawn(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    task = asyncio.ensure_future(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


async def _close(ws: web.WebSocketResponse, code: int, reason: str = "") -> None:
    if not ws.closed:
        metrics.closed(code, "server")
    try:
        await asyncio.wait_for(ws.close(code=code, message=reason.encode()[:120], drain=False), 10)
    except (TimeoutError, ConnectionError):
        pass


async def close_all(app: web.Application) -> None:
    """Shutdown: every open WebSocket is closed with 1001 (reconnect elsewhere)."""
    app[CHAT].closing = True
    sockets = [*app[SOCKETS]]
    if sockets:
        await asyncio.gather(
            *(ws.close(code=CloseCode.GOING_AWAY, message=b"server shutting down", drain=False) for ws in sockets),
            return_exceptions=True,
        )


def _error(exc: ChatError) -> bytes:
    return wire.encode_frame(wire.ErrorFrame(exc.code, exc.message, exc.ref))


async def handle(request: web.Request) -> web.StreamResponse:
    app = request.app
    chat: Chat = app[CHAT]
    cfg = app[CONFIG]
    limits = cfg.limits
    ws = web.WebSocketResponse(
        heartbeat=limits.heartbeat_s,
        max_msg_size=limits.max_frame_bytes + 1,  # aiohttp refuses a frame of max_msg_size; ours passes
        compress=False,
        timeout=5.0,
    )
    await ws.prepare(request)
    sockets = app[SOCKETS]
    sockets.add(ws)
    conn: Conn | None = None
    peer = _waiting_for_auth(app, request, limits)
    try:
        if peer is None:
            await _close(ws, CloseCode.TOO_MANY, "too many unauthenticated connections")
            return ws
        try:
            ident = await _authenticate(request, ws, cfg)
        finally:
            _authenticated(app, peer)
        if ident is None:
            return ws
        logs.about(request, ident.id)
        hub = chat.hub
        if not await chat.admit(ident.id):
            await _close(ws, CloseCode.TOO_MANY, "too many connections")
            return ws
        closing: list[asyncio.Task[None]] = []  # closes the hub asked for (1013, 4401 at exp)
        conn = Conn(ident, request.transport, lambda code, reason="": closing.append(_spawn(_close(ws, code, reason))))
        now = time.monotonic()
        conn.posting = Bucket(limits.rate_per_s, limits.rate_burst, now)
        conn.reading = Bucket(limits.read_rate_per_s, limits.read_burst, now)
        hub.add_conn(conn)
        chat.arm_expiry(conn)
        hub.send(
            conn, wire.encode_frame(wire.Ready(wire.UserRef(ident.id, ident.name, ident.role), limits.heartbeat_s))
        )
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                if conn.closed:  # by the hub: send its code, not the 1000 of a handler returning
                    await asyncio.gather(*closing)
                    break
                try:
                    await _dispatch(chat, app[QUEUE], conn, msg.data, cfg)
                except Disconnect as d:
                    await _close(ws, d.code, d.reason)
                    break
                if conn.out is not None:
                    # let the hub write the answer before the next buffered frame is
                    # read, so that only what the socket refuses counts as held
                    await asyncio.sleep(0)
            elif msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                if msg.type is WSMsgType.CLOSE:
                    metrics.closed(msg.data, "client")
                elif msg.type is WSMsgType.ERROR:  # e.g. 1009, a frame too large: aiohttp closed it
                    metrics.closed(ws.close_code, "server")
                break
    except Exception:
        log.exception("connection failed")
        await _close(ws, CloseCode.INTERNAL, "internal error")
    finally:
        sockets.discard(ws)
        if conn is not None:
            chat.went_away(conn)
    return ws


def _waiting_for_auth(app: web.Application, request: web.Request, limits: LimitsConfig) -> str | None:
    """Count a socket against its remote address until it authenticates
    (each may be held for `auth_timeout_s`); None if that address has
    `max_unauthenticated_per_ip` waiting already."""
    waiting = app[UNAUTHENTICATED]
    peer = request.remote or ""
    n = waiting.get(peer, 0)
    if n >= limits.max_unauthenticated_per_ip:
        return None
    waiting[peer] = n + 1
    return peer


def _authenticated(app: web.Application, peer: str) -> None:
    waiting = app[UNAUTHENTICATED]
    n = waiting.get(peer, 0) - 1
    if n > 0:
        waiting[peer] = n
    else:
        waiting.pop(peer, None)


async def _authenticate(request: web.Request, ws: web.WebSocketResponse, cfg: Config) -> Identity | None:
    """The first frame (or ?token=) must be a valid `auth` by `auth_timeout_s`
    after the upgrade. The deadline is absolute: ping and pong control frames
    restart aiohttp's own receive timeout, so it cannot be used for this."""
    token = request.query.get("token")
    if token is None:
        try:
            async with asyncio.timeout(cfg.limits.auth_timeout_s):
                msg = await ws.receive()
        except TimeoutError:
            await _close(ws, CloseCode.UNAUTHORIZED, "no auth in time")
            return None
        if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            return None
        try:
            first = wire.decode_json(msg.data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            first = None
        if not isinstance(first, wire.Auth):
            await ws.send_str(wire.encode(wire.ErrorFrame("unauthorized", "the first frame must be auth")).decode())
            await _close(ws, CloseCode.UNAUTHORIZED, "auth first")
            return None
        token = first.token
    try:
        return verify(token, cfg.auth.secret)
    except Unauthorized as exc:
        await ws.send_str(wire.encode(wire.ErrorFrame(exc.code, exc.message)).decode())
        reason = "token signed with another secret" if exc.code == "invalid_signature" else "invalid token"
        await _close(ws, CloseCode.UNAUTHORIZED, reason)
        return None


def _take_token(conn: Conn, limits: LimitsConfig, bucket: Bucket | None = None) -> None:
    """Token buckets per connection, one for posting frames (the default) and
    one for reads (`conn.reading`); staff and bots are exempt. Rate-limited
    answers in a row, of either kind, past `rate_abuse_closes` close 4429."""
    if conn.ident.role in permissions.RATE_EXEMPT:
        return
    if (bucket or conn.posting).take(time.monotonic()):
        conn.strikes = 0
        return
    conn.strikes += 1
    if conn.strikes > limits.rate_abuse_closes:
        raise Disconnect(CloseCode.TOO_MANY, "rate limit abused")
    raise RateLimited("too many messages; slow down" if bucket is None else "too many reads; slow down")


PONG = wire.encode_frame(wire.Pong())


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
                await chat.typing(conn, frame.order, frame.active)
            case wire.Read():
                await chat.read(conn, frame.order, frame.seq)
            case wire.Join():
                _take_token(conn, limits, conn.reading)
                await chat.join(conn, frame.order, frame.since, frame.limit)
            case wire.Leave():
                chat.leave(conn, frame.order)
            case wire.History():
                _take_token(conn, limits, conn.reading)
                page = await chat.messages_page(conn.ident, frame.order, frame.before, frame.after, frame.limit)
                send(conn, wire.encode_frame(page))
            case wire.Inbox():
                _take_token(conn, limits, conn.reading)
                send(conn, wire.encode_frame(await chat.inbox(conn, frame.limit, frame.cursor)))
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
                ident = verify(frame.token, cfg.auth.secret)
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
