"""Every typed aiohttp application key: what the edge's handlers reach through `request.app`.

Set once, by `chatd.edge.server.application` from the services the
composition root (chatd.app) built; nothing else writes them.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from chatd.attachments import Attachments
from chatd.chat import Chat
from chatd.config import Config
from chatd.edge.endpoint import Endpoint
from chatd.mail.addresses import ReplyAddresses
from chatd.notifier import Notifier
from chatd.sla import Escalator
from chatd.staff_queue import StaffQueue
from chatd.threads import Threads
from chatd.webhooks import Webhooks

CONFIG = web.AppKey("config", Config)
CHAT = web.AppKey("chat", Chat)
ATTACHMENTS = web.AppKey("attachments", Attachments)
THREADS = web.AppKey("threads", Threads)
WEBHOOKS = web.AppKey[Webhooks | None]("webhooks")  # None without [webhooks] url
METRICS = web.AppKey("metrics", CollectorRegistry)
SLA = web.AppKey("sla", Escalator)
QUEUE = web.AppKey("queue", StaffQueue)  # the staff attention queue's staff-side use cases
REPLIES = web.AppKey[ReplyAddresses | None]("replies")  # None without [email] reply_domain
NOTIFIER = web.AppKey("notifier", Notifier)
ENDPOINT = web.AppKey("ws", Endpoint)  # what every WebSocket shares: open sockets, heartbeat, services
