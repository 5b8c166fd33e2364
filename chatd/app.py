"""The composition root: the one place that knows every piece and wires them.

Each component gets its collaborators in its constructor; `open_services`
builds them in dependency order, starts them, and stops them in reverse.
`create_app` hands that to the aiohttp edge (chatd.edge.server).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from chatd import metrics
from chatd.attachments import Attachments
from chatd.chat import Chat
from chatd.config import Config
from chatd.edge import server
from chatd.edge.server import Services
from chatd.edge.smtp import Listener
from chatd.files import DirectoryFiles
from chatd.mail.addresses import ReplyAddresses
from chatd.mail.inbound import Inbound
from chatd.mail.outbound import Mailer
from chatd.notifications import Rules
from chatd.notifier import Notifier
from chatd.relay.base import Relay
from chatd.relay.local import LocalRelay
from chatd.rooms.events import RoomEvent
from chatd.rooms.hub import Hub
from chatd.sla import Escalator
from chatd.staff_queue import StaffQueue
from chatd.store import make_store
from chatd.store.base import Store
from chatd.store.records import OrderRecord
from chatd.threads import Threads
from chatd.webhooks import Webhooks, breach_events, message_events, order_events
from chatd.wire import Presence, encode_frame
from chatd.workflow import Workflows

log = logging.getLogger("chatd")


def presence_frame(order: str, user: str, online: bool) -> bytes:
    return encode_frame(Presence(order, user, online))


def make_relay(cfg: Config) -> Relay:
    if cfg.relay.url:
        from chatd.relay.redis import RedisRelay

        return RedisRelay(cfg.relay.url, presence_frame)
    return LocalRelay()


def attachments_dir(cfg: Config) -> Path:
    """`[attachments] dir`; unset: "attachments" in the folder of `[store] path`:
    beside the SQLite file, or with PostgreSQL (which has no file) in that
    folder all the same, by default data/attachments under the working
    directory, beside dev-secrets.json."""
    return Path(cfg.attachments.dir) if cfg.attachments.dir else Path(cfg.store.path).parent / "attachments"


@asynccontextmanager
async def open_services(cfg: Config) -> AsyncIterator[Services]:
    """Store, relay, hub, attachments, chat, threads, webhooks, sla, the staff queue, reply
    addresses, notifier, the inbound SMTP listener, metrics: built and started in that
    order, stopped in reverse (the store last: it flushes every queued write first)."""
    webhooks: Webhooks | None = None  # the store wakes its delivery task after a commit that wrote events

    def wake_webhooks() -> None:
        assert webhooks is not None  # built below whenever [webhooks] url is set, before the store opens
        webhooks.wake()

    # The store gets pure functions and values only: the outbox events of a
    # change (written in its transaction), a wake-up on the loop after such a
    # commit, and the batch metric. Nothing of chat, the hub or the relay runs
    # inside a transaction.
    notifying = bool(cfg.webhooks.url or cfg.email.smtp_url)  # someone to tell: notifications are scheduled
    store: Store = make_store(
        cfg,
        events_for_message=message_events if cfg.webhooks.url else None,
        events_for_order=order_events if cfg.webhooks.url else None,
        notifications_for=Rules(cfg.notify.delay_s).plan if notifying else None,
        on_outbox=wake_webhooks if cfg.webhooks.url else None,
        on_batch=metrics.observe_batch,
    )
    relay = make_relay(cfg)
    chat: Chat | None = None  # the hub fills a gap in a room from the store, through the chat service

    def read_gap(order: str, after: int, before: int) -> Coroutine[Any, Any, list[RoomEvent]]:
        assert chat is not None  # built right after the hub, before anything runs
        return chat.read_gap(order, after, before)

    def check_open(order: OrderRecord, role: str) -> None:
        """No uploads by participants to a closed chat: the chat service decides."""
        assert chat is not None  # built right after the attachment service, before anything runs
        chat.check_open(order, role)

    hub = Hub(
        cfg.limits.outbound_queue_frames,
        cfg.limits.outbound_buffer_bytes,
        on_room_idle=relay.watch_room,
        on_user_idle=relay.watch_user,
        gap_reader=read_gap,
        queue_bytes=cfg.limits.outbound_queue_bytes,
        total_reader=store.visible_total,
        on_staff_idle=relay.watch_staff,
    )
    files = DirectoryFiles(attachments_dir(cfg))
    if cfg.store.url and not cfg.attachments.dir:
        log.info(
            "attachment files in %s ([attachments] dir unset): with several hosts, set it to a volume they all mount",
            files.root.resolve(),
        )
    attachments = Attachments(
        store,
        files,
        cfg.attachments,
        contact_filter=cfg.filter.mode,
        retention_days=cfg.retention.attachments_days,
        gate=check_open,
    )
    chat = Chat(
        store,
        hub,
        relay,
        cfg.limits,
        attachments=attachments,
        contact_filter=cfg.filter.mode,
        workflows=Workflows(cfg.workflow, cfg.workflows),
        reply_within_s=cfg.sla.reply_within_s,
    )
    threads = Threads(store, chat.online_now_each, cfg.limits.history_max, reply_within_s=cfg.sla.reply_within_s)
    sla = Escalator(
        chat, cfg.sla.reply_within_s, cfg.sla.check_every_s, events=breach_events if cfg.webhooks.url else None
    )
    webhooks = Webhooks(store, cfg.webhooks) if cfg.webhooks.url else None
    queue = StaffQueue(chat)
    # reply by e-mail: addresses wherever [email] reply_domain is set, the listener where inbound_port is too
    email = cfg.email
    replies = ReplyAddresses(store, cfg.auth.secret, email.reply_domain) if email.reply_domain else None
    listener = None
    if replies is not None and email.inbound_port:
        listener = Listener(Inbound(chat, replies, cfg.limits, attachments=attachments), email)
    notifier = Notifier(
        store,
        cfg.notify,
        mailer=Mailer(cfg.email) if cfg.email.smtp_url else None,
        webhooks=bool(cfg.webhooks.url),
        reply_address=replies.reply_to if replies is not None else None,  # the Reply-To of notification mail
    )

    async with AsyncExitStack() as running:
        await store.open()
        running.push_async_callback(store.aclose)  # flushes every queued write first
        await relay.start(chat)
        running.push_async_callback(relay.aclose)
        await chat.start(catch_up_s=2.0 if cfg.relay.url else 0.0)
        running.push_async_callback(chat.aclose)
        running.callback(threads.close)
        await attachments.start()
        running.push_async_callback(attachments.aclose)
        if webhooks is not None:
            await webhooks.start()
            running.push_async_callback(webhooks.aclose)
        await sla.start()
        running.push_async_callback(sla.aclose)
        if notifying:
            await notifier.start()
            running.push_async_callback(notifier.aclose)
        if listener is not None:  # last: a reply finds everything it goes through running
            await listener.start()
            running.push_async_callback(listener.aclose)
        # registering collects once: made when everything it reads is running
        # the webhook backlog as of the last delivery round: a scrape never reads the store
        backlog = (lambda: webhooks.counts) if webhooks is not None else None
        pending = (lambda: notifier.backlog) if notifying else None
        registry = metrics.app_registry(metrics.AppCollector(hub, relay, backlog, pending))
        yield Services(chat, attachments, threads, webhooks, registry, sla, notifier, queue, replies)


def create_app(cfg: Config) -> web.Application:
    """The aiohttp application for `cfg` (its services open when it starts)."""
    return server.application(cfg, open_services)
