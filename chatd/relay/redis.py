"""RedisRelay: relays events between chatd instances over Redis pub/sub.

Events are delivered to the local hub at once (also while Redis is down) and
published for the others. Each instance subscribes only to the rooms and users
it has local connections for, in batches. Pub/sub is best effort: the store is
the truth, and after a reconnect the handler's `resync()` refills what was
missed. A canary published through Redis every second proves the round trip
for `/healthz`, and doubles as this instance's heartbeat for presence
(chatd.relay.redis_presence: a crashed instance's users go offline).

The hot paths, PUBLISH batches out and pub/sub messages in, run on two bare
connections (chatd.relay.resp): redis-py's per-command and per-message Python
work cost more CPU than the fan-out itself. An instance gets its own
publishes back and drops them by their first bytes, undecoded. Scripts,
presence, admission and the canary stay on redis-py (per connection or
join, not per message).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Literal, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chatd.relay import redis_presence as rp
from chatd.relay import resp
from chatd.relay.base import Handler
from chatd.rooms.events import RoomEvent, StaffEvent, UserEvent
from chatd.tasks import stop

log = logging.getLogger("chatd.relay")

ROOM, USER, PRESENCE, STAFF = 0, 1, 2, 3
_MAX_BACKLOG = 100_000  # publishes queued while Redis is slow or down; oldest dropped
_REPLY_TIMEOUT_S = 5.0  # a PUBLISH batch unanswered this long: the connection is given up
_DEPARTED_KEPT = 256  # instances remembered as gone (each restart makes a new one)
_ROOM = b"chatd:room:"
_USER = b"chatd:user:"
STAFF_CHANNEL = "chatd:staff"  # every instance with a staff connection

# What the publisher sends, in queue order: a PUBLISH (channel, payload), a
# presence change (order, user, online, frame), this instance's count of a user.
_Publish = tuple[Literal["publish"], bytes, bytes]
_PresenceChange = tuple[Literal["presence"], str, str, bool, bytes]
_Conns = tuple[Literal["conns"], str]
_Queued = _Publish | _PresenceChange | _Conns


class PresenceNote(msgspec.Struct, array_like=True):
    """Who went online or offline anywhere (PRESENCE envelopes)."""

    user: str
    online: bool


class Envelope(msgspec.Struct, array_like=True):
    origin: str
    kind: int
    room: RoomEvent | None = None
    user: UserEvent | None = None
    presence: PresenceNote | None = None
    staff: StaffEvent | None = None  # last: instances that do not know it ignore it


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Envelope).decode


def origin_prefix(instance: str) -> bytes:
    """The bytes every envelope from `instance` starts with: an array_like
    Struct is a msgpack array whose first item is the origin, so an instance
    tells its own publishes (Redis sends them back) by a prefix, without
    decoding them. A string's header holds its length: no other origin matches."""
    packed = msgspec.msgpack.encode(instance)
    head = _encode(Envelope(instance, ROOM))
    assert head[1:].startswith(packed)  # a 1-byte array header, then the origin
    return head[: 1 + len(packed)]


async def _cancel(tasks: list[asyncio.Task[None]], within: float) -> None:
    """Cancel until they have ended (or `within` is up): a cancellation that
    lands as a redis-py read times out can be taken for the timeout and lost,
    and the task would go on after close with a connection of its own."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    pending = set(tasks)
    while pending and loop.time() < deadline:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)


def room_channel(order: str) -> str:
    return f"chatd:room:{order}"


def user_channel(user: str) -> str:
    return f"chatd:user:{user}"


class RedisRelay:
    """Implements chatd.relay.base.Relay (see there for the contract)."""

    def __init__(
        self,
        url: str,
        presence_frame: Callable[[str, str, bool], bytes],
        canary_interval_s: float = 1.0,
        admit_timeout_s: float = 1.0,
    ) -> None:
        self.url = url
        # an admit that Redis does not answer in time falls back to this instance's count
        self.admit_timeout_s = admit_timeout_s
        self.admit_fallbacks = 0  # admits decided by this instance's count alone
        self.presence_frame = presence_frame  # (order, user, online) -> a `presence` frame
        self.instance = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._own = origin_prefix(self.instance)
        self.canary_interval_s = canary_interval_s
        self.healthy = False
        self._handler: Handler | None = None
        self._redis: aioredis.Redis | None = None
        self._queue: list[_Queued] = []  # ("publish", channel, payload), ("presence", ...), ("conns", user)
        self._queue_event = asyncio.Event()
        self._wanted: set[str] = set()
        self._subscribed: set[str] = set()
        self._sub_event = asyncio.Event()
        self._sub: resp.Connection | None = None  # pub/sub messages in
        self._pub: resp.Connection | None = None  # PUBLISH batches out
        self._connected = False
        self._last_canary = 0.0
        self._canary_channel = f"chatd:canary:{self.instance}"
        self._canary_bytes = self._canary_channel.encode()
        self._tasks: list[asyncio.Task[None]] = []
        self._online: dict[str, set[str]] = {}  # order -> users online anywhere (rooms we watch)
        self._loading: dict[str, asyncio.Task[None]] = {}  # order -> presence being read
        self._mine: set[tuple[str, str]] = set()  # (order, user) with a connection here
        self._conns: dict[str, int] = {}  # user -> admitted connections here
        # Every write of our counts is built and answered under this lock, so Redis
        # applies them in the order they were built: a stale, lower count can never
        # land after a newer one (that would let another instance admit past the limit).
        self._counting = asyncio.Lock()
        self._synced = False  # our holdings were put in Redis since we (re)connected
        self._peers: set[str] | None = None  # the other registered instances at the last heartbeat
        self._departed: dict[str, None] = {}  # instances seen leaving, oldest first
        self.dropped = 0

    @property
    def _live_handler(self) -> Handler:
        assert self._handler is not None  # set by start(), until aclose()
        return self._handler

    @property
    def _client(self) -> aioredis.Redis:
        assert self._redis is not None  # set by start()
        return self._redis

    # --- lifecycle --------------------------------------------------------

    async def start(self, handler: Handler) -> None:
        self._handler = handler
        self._redis = aioredis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)
        self._change = self._redis.register_script(rp.CHANGE)
        self._reap = self._redis.register_script(rp.REAP)
        self._sync = self._redis.register_script(rp.SYNC)
        self._admit = self._redis.register_script(rp.ADMIT)
        self._set_conns = self._redis.register_script(rp.SET_CONNS)
        self._wanted.add(self._canary_channel)
        self._tasks = [
            asyncio.create_task(self._run_subscriber(), name="chatd-relay-sub"),
            asyncio.create_task(self._run_publisher(), name="chatd-relay-pub"),
            asyncio.create_task(self._run_canary(), name="chatd-relay-canary"),
        ]

    async def aclose(self) -> None:
        # A connection wedged under load must not hold up the shutdown.
        await _cancel([*self._tasks, *self._loading.values()], within=2.0)
        try:  # leave the cluster now rather than when the heartbeat runs out
            async with asyncio.timeout(2.0):
                await self._reap_instance(self.instance, deliver=False)
        except (TimeoutError, RedisError, OSError) as exc:
            log.warning("relay: leaving presence: %r", exc)
        for conn in (self._sub, self._pub):
            if conn is not None:
                conn.close()
        if self._redis is not None:
            try:
                await asyncio.wait_for(self._redis.aclose(), 2.0)
            except (TimeoutError, RedisError, OSError) as exc:
                log.warning("relay close: %r", exc)
        self._handler = None

    # --- publishing ----------------------------------------------------------

    def publish_room(self, ev: RoomEvent) -> None:
        self._live_handler.deliver_room(ev)
        self._enqueue(_ROOM + ev.order.encode(), _encode(Envelope(self.instance, ROOM, room=ev)))

    def publish_user(self, ev: UserEvent) -> None:
        self._live_handler.deliver_user(ev)
        self._enqueue(_USER + ev.user.encode(), _encode(Envelope(self.instance, USER, user=ev)))

    def publish_staff(self, ev: StaffEvent) -> None:
        self._live_handler.deliver_staff(ev)
        self._enqueue(STAFF_CHANNEL.encode(), _encode(Envelope(self.instance, STAFF, staff=ev)))

    def presence(self, order: str, user: str, online: bool, data: bytes) -> None:
        """A user's first (last) local connection joined (left) `order`: count it
        in Redis; only the instance that moves the user across nobody/somebody tells the room."""
        if online:
            self._mine.add((order, user))
        else:
            self._mine.discard((order, user))
        self._queue.append(("presence", order, user, online, data))
        self._queue_event.set()

    def online(self, order: str) -> frozenset[str]:
        return frozenset(self._online.get(order, ()))

    async def online_now(self, orders: Sequence[str]) -> dict[str, frozenset[str]]:
        """A watched room's presence as kept here; the others' read from Redis in one
        round trip (nobody while Redis is away or does not answer in time: as far as known)."""
        out = {o: frozenset(self._online[o]) for o in orders if o in self._online and o not in self._loading}
        ask = [o for o in dict.fromkeys(orders) if o not in out]
        if not ask:
            return out
        if not self._connected:  # no wait for an answer that is not coming
            return {**out, **dict.fromkeys(ask, frozenset())}
        try:
            async with asyncio.timeout(self.admit_timeout_s):
                pipe = self._client.pipeline(transaction=False)
                for o in ask:
                    pipe.hkeys(rp.presence_key(o))
                pipe.smembers(rp.REGISTRY)
                *fields, registered = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            log.debug("relay: presence of %d rooms not read: %r", len(ask), exc)
            return {**out, **dict.fromkeys(ask, frozenset())}
        for o, f in zip(ask, fields, strict=True):
            out[o] = frozenset(rp.holders(f, registered))
        return out

    async def admit(self, user: str, limit: int, local: int) -> bool:
        if local >= limit:
            return False
        try:
            async with asyncio.timeout(self.admit_timeout_s), self._counting:
                ok = await self._admit(
                    keys=[rp.REGISTRY, rp.conns_key(user), rp.owned_conns_key(self.instance)],
                    args=[self.instance, user, local + 1, limit],
                )
                if ok:
                    self._conns[user] = local + 1
        except (RedisError, OSError, TimeoutError):
            # Redis away: this instance's count alone decides (put back on reconnect)
            self._conns[user] = local + 1
            self.admit_fallbacks += 1
            log.warning("admit of %s decided without Redis (no answer in %.1f s)", user, self.admit_timeout_s)
            return True
        return bool(ok)

    def release(self, user: str, local: int) -> None:
        if local:
            self._conns[user] = local
        else:
            self._conns.pop(user, None)
        self._queue.append(("conns", user))
        self._queue_event.set()

    def _enqueue(self, channel: bytes, payload: bytes) -> None:
        if len(self._queue) >= _MAX_BACKLOG:
            del self._queue[0]
            self.dropped += 1
        self._queue.append(("publish", channel, payload))
        self._queue_event.set()

    async def _run_publisher(self) -> None:
        while True:
            await self._queue_event.wait()
            self._queue_event.clear()
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    await self._send(batch)
                except (RedisError, OSError) as exc:
                    self._mark_down(f"publish failed: {exc}")
                    await asyncio.sleep(0.5)  # best effort: the store fills the gaps later

    async def _send(self, batch: list[_Queued]) -> None:
        if any(item[0] == "conns" for item in batch):
            async with self._counting:  # the counts are read and written in one turn
                await self._send_batch(batch)
        else:
            await self._send_batch(batch)

    async def _send_batch(self, batch: list[_Queued]) -> None:
        """In queue order: runs of publishes on the bare connection, the rest
        (scripts) on redis-py, each run answered before the next is sent."""
        for publishes, run in itertools.groupby(batch, key=lambda item: item[0] == "publish"):
            # groupby's key: a run is all publishes or holds none
            if publishes:
                await self._publish(cast("list[_Publish]", list(run)))
            else:
                await self._run_scripts(cast("list[_PresenceChange | _Conns]", list(run)))

    async def _publish(self, items: list[_Publish]) -> None:
        """One write of PUBLISH commands; their replies are only counted."""
        if self._pub is None or self._pub.lost.done():  # (again) after it was lost
            self._pub = None
            self._pub = await resp.connect(self.url)
        conn = self._pub
        conn.send(b"".join([resp.pack_publish(channel, payload) for _, channel, payload in items]), len(items))
        try:
            async with asyncio.timeout(_REPLY_TIMEOUT_S):
                await conn.drained()  # also bounds what is buffered to the backlog's size
        except BaseException:
            self._pub = None  # replies would no longer match: start afresh
            conn.close()
            raise
        if conn.errors:
            log.warning("relay: Redis refused %d publishes", conn.errors)
            conn.errors = 0

    async def _run_scripts(self, items: list[_PresenceChange | _Conns]) -> None:
        pipe = self._client.pipeline(transaction=False)
        presence: list[tuple[int, str, str, bool, bytes]] = []
        keys = [rp.REGISTRY, rp.owned_key(self.instance)]
        for item in items:
            if item[0] == "conns":  # our count now, whatever was queued before
                await self._set_conns(
                    keys=[rp.owned_conns_key(self.instance)],
                    args=[self.instance, 0, item[1], self._conns.get(item[1], 0)],
                    client=pipe,
                )
            else:
                _, order, user, online, data = item
                await self._change(keys=keys, args=[self.instance, rp.member(order, user), int(online)], client=pipe)
                presence.append((len(pipe.command_stack) - 1, order, user, online, data))
        results = await pipe.execute()
        for index, order, user, online, data in presence:
            if results[index] == 0:  # no other live instance holds them here
                self._announce(order, user, online, data)

    def _announce(self, order: str, user: str, online: bool, data: bytes | None = None, deliver: bool = True) -> None:
        """`user` went online (offline) in `order` across all instances: tell the room everywhere."""
        ev = RoomEvent(order, data or self.presence_frame(order, user, online))
        self._apply_presence(order, user, online)
        if deliver:
            self._live_handler.deliver_room(ev)
        env = Envelope(self.instance, PRESENCE, room=ev, presence=PresenceNote(user, online))
        self._enqueue(_ROOM + order.encode(), _encode(env))

    # --- presence bookkeeping (see chatd.relay.redis_presence) -------------------

    async def _heartbeat(self) -> None:
        """Keep our `alive` key fresh; take over the holdings of instances whose key ran out."""
        pipe = self._client.pipeline(transaction=True)
        pipe.set(rp.alive_key(self.instance), b"1", px=rp.ALIVE_MS)
        pipe.sismember(rp.REGISTRY, self.instance)
        pipe.smembers(rp.REGISTRY)
        _, registered, instances = await pipe.execute()
        if not registered and self._synced:
            await self._sync_presence()  # taken for dead while cut off: put our holdings back
        others = [i.decode() for i in instances if i.decode() != self.instance]
        self._note_peers(set(others))
        if not others:
            return
        pipe = self._client.pipeline(transaction=False)
        for i in others:
            pipe.exists(rp.alive_key(i))
        for inst, alive in zip(others, await pipe.execute(), strict=True):  # one answer per command
            if not alive:
                self._depart(inst)
                await self._reap_instance(inst)
            else:  # one taken for dead while cut off is back (it put its holdings back)
                self._departed.pop(inst, None)

    def departed(self, instance: str) -> bool:
        return instance in self._departed

    def _note_peers(self, registered: set[str]) -> None:
        """Instances that left the registry since the last heartbeat have left: one
        stopped, or another instance reaped it (only the reaper hears of that)."""
        if self._peers is not None:
            for inst in self._peers - registered:
                self._depart(inst)
        self._peers = registered

    def _depart(self, inst: str) -> None:
        self._departed[inst] = None
        if len(self._departed) > _DEPARTED_KEPT:
            del self._departed[next(iter(self._departed))]

    async def _reap_instance(self, inst: str, deliver: bool = True) -> None:
        gone = await self._reap(keys=[rp.REGISTRY, rp.owned_key(inst), rp.owned_conns_key(inst)], args=[inst])
        if gone:
            log.info("relay: instance %s is gone; %d room presences ended", inst, len(gone))
        for m in gone:
            order, user = rp.split(m)
            self._announce(order, user, False, deliver=deliver)
        if not deliver and self._queue:
            await self._send(self._queue)  # the publisher has stopped: send the news ourselves
            self._queue = []

    async def _sync_presence(self) -> None:
        """Make Redis hold exactly what we hold (after a reconnect: Redis may have
        restarted empty, or another instance may have taken us for dead)."""
        self._synced = True
        members = [rp.member(o, u) for o, u in self._mine]
        on, off = await self._sync(keys=[rp.REGISTRY, rp.owned_key(self.instance)], args=[self.instance, *members])
        for m in on:
            self._announce(*rp.split(m), True)
        for m in off:
            self._announce(*rp.split(m), False)
        async with self._counting:
            counts = [x for user, n in self._conns.items() for x in (user, n)]
            await self._set_conns(keys=[rp.owned_conns_key(self.instance)], args=[self.instance, 1, *counts])

    async def _reload_presence(self) -> None:
        """Re-read who is online in every watched room; tell our members about
        changes they missed while the relay was down."""
        orders = list(self._online)
        if not orders:
            return
        pipe = self._client.pipeline(transaction=False)
        for o in orders:
            pipe.hkeys(rp.presence_key(o))
        pipe.smembers(rp.REGISTRY)
        *fields, registered = await pipe.execute()
        for order, f in zip(orders, fields, strict=True):
            users = self._online.get(order)
            if users is None:
                continue
            now = rp.holders(f, registered)
            for user in now ^ users:
                if (order, user) not in self._mine:  # ours: the local hub knows already
                    self._live_handler.deliver_room(RoomEvent(order, self.presence_frame(order, user, user in now)))
            users.clear()
            users.update(now)

    def _apply_presence(self, order: str, user: str, online: bool) -> None:
        users = self._online.get(order)
        if users is None:
            return
        if online:
            users.add(user)
        else:
            users.discard(user)

    # --- subscriptions ---------------------------------------------------------

    def watch_room(self, order: str, on: bool) -> None:
        self._watch(room_channel(order), on)
        if on:
            self._online.setdefault(order, set())
            self._loading[order] = asyncio.get_running_loop().create_task(self._load_presence(order))
        else:
            self._online.pop(order, None)
            task = self._loading.pop(order, None)
            if task is not None:
                task.cancel()

    async def load_room(self, order: str) -> None:
        task = self._loading.get(order)
        if task is not None:
            await asyncio.wait([task], timeout=2.0)  # Redis down: go on without it

    async def _load_presence(self, order: str) -> None:
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.hkeys(rp.presence_key(order))
            pipe.smembers(rp.REGISTRY)
            fields, registered = await pipe.execute()
        except (RedisError, OSError):
            self._loading.pop(order, None)
            return
        users = self._online.get(order)
        if users is not None:
            users.update(rp.holders(fields, registered))
        self._loading.pop(order, None)

    def watch_user(self, user: str, on: bool) -> None:
        self._watch(user_channel(user), on)

    def watch_staff(self, on: bool) -> None:
        self._watch(STAFF_CHANNEL, on)

    def _watch(self, channel: str, on: bool) -> None:
        if on:
            self._wanted.add(channel)
        else:
            self._wanted.discard(channel)
        self._sub_event.set()

    async def _run_subscriber(self) -> None:
        delay = 0.1
        while True:
            conn: resp.Connection | None = None
            sync: asyncio.Task[None] | None = None
            held: list[Any] = []  # messages that came before the resync
            try:
                conn = await resp.connect(self.url, on_push=held.append)
                self._sub = conn
                self._subscribed = set()
                self._sync_subscriptions(conn)
                self._connected = True
                since = time.monotonic()
                delay = 0.1
                log.info("relay subscribed (%d channels)", len(self._subscribed))
                async with asyncio.timeout(5.0):
                    await self._sync_presence()
                    await self._reload_presence()
                self._live_handler.resync()  # whatever was missed while down comes from the store
                for reply in held:
                    self._on_push(reply)
                conn.on_push = self._on_push  # from here on each read is handled as it comes
                sync = asyncio.create_task(self._keep_subscriptions(conn))
                stale = 3 * self.canary_interval_s
                while True:
                    done, _ = await asyncio.wait([conn.lost, sync], timeout=self.canary_interval_s)
                    for ended in done:
                        ended.result()  # raises why
                    if time.monotonic() - max(self._last_canary, since) > stale:
                        # a half-dead connection can go quiet for ever
                        raise ConnectionError("no canary through the subscription")
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._mark_down(f"subscriber: {exc}")
            except Exception:  # noqa: BLE001 - keep relaying whatever happened
                log.exception("relay subscriber failed")
                self._mark_down("subscriber crashed")
            finally:
                await stop(sync)
                if conn is not None:
                    conn.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _keep_subscriptions(self, conn: resp.Connection) -> None:
        while True:
            await self._sub_event.wait()
            self._sync_subscriptions(conn)

    def _sync_subscriptions(self, conn: resp.Connection) -> None:
        """Subscribe and unsubscribe in batches until what is wanted is what we have."""
        self._sub_event.clear()
        add = list(self._wanted - self._subscribed)
        drop = list(self._subscribed - self._wanted)
        out = [resp.pack("SUBSCRIBE", *add[i : i + 500]) for i in range(0, len(add), 500)]
        out += [resp.pack("UNSUBSCRIBE", *drop[i : i + 500]) for i in range(0, len(drop), 500)]
        if out:
            conn.write(b"".join(out))
        self._subscribed.update(add)
        self._subscribed.difference_update(drop)

    def _on_push(self, reply: Any) -> None:
        """One pub/sub reply, as hiredis parsed it: [kind, channel, data or count]."""
        try:
            kind, channel, data = reply
            if kind == b"message":
                if data.startswith(self._own):
                    return  # ours: delivered locally when published, not worth decoding
                self._on_message(channel, data)
            elif kind == b"subscribe" and channel.startswith(_ROOM):
                # From here on the room's events come through Redis;
                # what was published before is in the store.
                self._live_handler.resync([channel[len(_ROOM) :].decode()])
        except Exception:  # noqa: BLE001 - one bad message must not end the subscription
            log.exception("relay: cannot handle %r", reply[:2] if isinstance(reply, list) else reply)

    def _on_message(self, channel: bytes, data: bytes) -> None:
        if channel == self._canary_bytes:
            self._last_canary = time.monotonic()
            if not self.healthy:
                log.info("relay healthy: canary came through Redis")
            self.healthy = True
            return
        env = _decode(data)
        if env.origin == self.instance:
            return  # delivered locally when published
        # each kind carries its own fields; one without them is a bad message (_on_push logs it)
        if env.kind == ROOM:
            assert env.room is not None
            if env.room.typing is not None:
                env.room.origin = env.origin  # its typist is shown only while that instance lives
            self._live_handler.deliver_room(env.room)
        elif env.kind == USER:
            assert env.user is not None
            self._live_handler.deliver_user(env.user)
        elif env.kind == STAFF:
            assert env.staff is not None
            self._live_handler.deliver_staff(env.staff)
        elif env.kind == PRESENCE:
            assert env.room is not None and env.presence is not None
            self._apply_presence(env.room.order, env.presence.user, env.presence.online)
            self._live_handler.deliver_room(env.room)

    # --- health ------------------------------------------------------------------

    async def _run_canary(self) -> None:
        while True:
            try:
                await self._client.publish(self._canary_channel, b"1")
                async with asyncio.timeout(5.0):
                    await self._heartbeat()
            except (RedisError, OSError, TimeoutError) as exc:
                self._mark_down(f"canary: {exc}")
            await asyncio.sleep(self.canary_interval_s)
            if time.monotonic() - self._last_canary > 3 * self.canary_interval_s:
                if self.healthy:
                    log.warning(
                        "relay degraded: no canary through Redis for %.1fs", time.monotonic() - self._last_canary
                    )
                self.healthy = False

    def _mark_down(self, why: str) -> None:
        if self._connected or self.healthy:
            log.warning("relay down: %s", why)
        self._connected = False
        self.healthy = False
        self._peers = None  # Redis may come back empty: a registry not refilled yet says nobody left
